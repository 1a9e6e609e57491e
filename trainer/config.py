"""The trainer's one config object, read from TOML (`rods train --config FILE`).

Every field has a default, a one-line comment and its valid range (pydantic constraints and a few
rules across fields, e.g. `max_new_tokens < max_total_tokens`), checked when the file is read,
before any model loads. Sections in the TOML file map to the nested models below (`[policy]`,
`[tasks]`, `[rollout]`, `[env]`, `[optim]`, `[loop]`, `[pool]`); unknown keys are errors, so a
typo is caught at start-up with the file, the field and the close name named. A mistake is one
line (`trainer.config_check.describe`): the field's path, the value given and the allowed range.
Redis, the detector and the buffer rules are process settings (`rods.config.Settings`,
environment variables), shared with the synthesis side; the config file may override the run
name and the detector budget (`[loop]`) and the buffer's lifecycle rules for this run (`[pool]`),
so that an experiment's arms carry their pool settings in their config files.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rods.tasks import CATEGORIES


class _Section(BaseModel):
    # strict: `group_size = "16"` or `hints = "on"` in a TOML file is a mistake to report, not to
    # coerce (an int is still accepted for a float field)
    model_config = ConfigDict(extra="forbid", strict=True)


class PolicyConfig(_Section):
    # "tiny" (build the local 4.7 M-param model), a packaged model (rods.models.PACKAGED, e.g.
    # "gemma-3-270m"), a local model directory, or a hub id; checked by config_check.check_paths
    model: str = Field("tiny", min_length=1)
    init_from: str | None = None  # a checkpoint dir to start from (e.g. the SFT output)
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: cuda when available
    # bf16 autocast; master weights stay fp32. Off on CPUs without AVX512-BF16 (slower)
    bf16: bool = False
    seed: int = Field(0, ge=0, le=2**32 - 1)  # seeds model init, sampling and task order


class TaskConfig(_Section):
    subset: Literal["all", "demo"] = "all"  # demo: short base tasks the tiny model can learn
    categories: list[str] = Field(default_factory=lambda: list(CATEGORIES))  # the seeds' categories

    @field_validator("categories")
    @classmethod
    def _known_categories(cls, v: list[str]) -> list[str]:
        unknown = [c for c in v if c not in CATEGORIES]
        if unknown or not v or len(set(v)) != len(v):
            what = f"unknown {unknown}" if unknown else "empty" if not v else "a category twice"
            raise ValueError(f"{what}: give a non-empty list of distinct categories from {list(CATEGORIES)}")
        return v


class RolloutConfig(_Section):
    engine: Literal["hf", "vllm"] = "hf"  # vllm needs the `gpu` extra and a CUDA device
    # G rollouts per task (paper: 16); GRPO's advantage compares the rollouts of a group, so ≥ 2
    group_size: int = Field(16, ge=2, le=1024)
    tasks_per_step: int = Field(32, ge=1, le=4096)  # B tasks per update (paper: 32 → 512 trajectories)
    temperature: float = Field(1.0, gt=0.0, le=10.0)  # sampling temperature (greedy is eval's job)
    top_p: float = Field(1.0, gt=0.0, le=1.0)  # nucleus sampling
    max_new_tokens: int = Field(256, ge=1, le=1 << 20)  # per assistant message
    max_total_tokens: int = Field(4096, ge=2, le=1 << 22)  # per trajectory; beyond it truncated
    max_steps_per_turn: int = Field(5, ge=1, le=100)  # messages with calls per user turn (EnvTuning: 5)
    compact_tools: bool = False  # render only function names in the system line (tiny model)
    # hf engine: rows that finished a message are fed their next turn once they are this share
    # of the batch (1.0 = lock-step rounds; 0.1 measured fastest on CPU, bench_rollout.py)
    refill_frac: float = Field(default=0.1, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _one_message_fits(self) -> RolloutConfig:
        if self.max_new_tokens >= self.max_total_tokens:
            raise ValueError(
                f"max_new_tokens ({self.max_new_tokens}) must be below max_total_tokens "
                f"({self.max_total_tokens}): one message must fit in a trajectory with its prompt"
            )
        return self


class EnvConfig(_Section):
    # tool error messages carry actionable hints (what was wrong, which argument, what is
    # allowed): the environment-augmentation baseline (the env-hints arm); training only
    hints: bool = False


class OptimConfig(_Section):
    lr: float = Field(1e-6, gt=0.0, le=1.0)  # AdamW learning rate (paper: 1e-6)
    weight_decay: float = Field(0.0, ge=0.0, le=1.0)  # AdamW weight decay
    betas: tuple[float, float] = Field((0.9, 0.999), strict=False)  # AdamW betas, each in [0, 1) (a TOML list)
    grad_clip: float = Field(1.0, gt=0.0)  # max global grad norm (EnvTuning: 1.0)
    # ratio clip below 1 (ε_low; EnvTuning: 0.2): the ratio is kept above 1 - ε_low, so ε_low < 1
    clip_low: float = Field(0.2, gt=0.0, lt=1.0)
    clip_high: float = Field(0.28, gt=0.0, le=10.0)  # ratio clip above 1 ("clip-higher", ε_high; EnvTuning: 0.28)
    # β, KL to the frozen initial policy (paper: 0.01); 0 drops the reference
    kl_coef: float = Field(0.01, ge=0.0, le=100.0)
    micro_batch: int = Field(8, ge=1, le=4096)  # trajectories per forward/backward; gradients accumulate
    ppo_epochs: int = Field(1, ge=1, le=100)  # optimisation passes over each batch (1 = strictly on-policy)

    @field_validator("betas")
    @classmethod
    def _betas_below_one(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= b < 1.0 for b in v):
            raise ValueError(f"{list(v)}: each AdamW beta must be in [0, 1), e.g. [0.9, 0.999]")
        return v


class LoopConfig(_Section):
    # every mode samples the run's buffer with the same sampler; they differ in what is published:
    # rods: the detector's boundary requests; uniform: as many requests, for tasks drawn at
    # random from the batch; static: nothing (synthesis off)
    mode: Literal["rods", "static", "uniform"] = "rods"
    steps: int = Field(100, ge=1, le=10**7)  # GRPO updates
    steps_per_epoch: int = Field(0, ge=0)  # epoch boundary (promotion, retirement); 0 = pool size / B
    checkpoint_every: int = Field(10, ge=1)  # steps between checkpoints (always one at the end)
    keep_checkpoints: int = Field(2, ge=0)  # older checkpoints are deleted (0: every one is kept)
    run: str | None = None  # Redis run name; default: RODS_RUN (the services read it too)
    request_budget: int | None = Field(None, ge=0, le=100_000)  # override the detector's M per step

    @field_validator("run")
    @classmethod
    def _run_name(cls, v: str | None) -> str | None:
        from rods.store.keys import check_run

        return None if v is None else check_run(v)


def default_of(section: type[BaseModel], name: str) -> Any:
    """The default declared here for `section.name`: run-time objects that take the same knob
    (`trainer.types.RolloutSettings`, `trainer.grpo.GRPOLossConfig`) default to it."""
    return section.model_fields[name].default


class PoolConfig(_Section):
    """Buffer lifecycle rules of this run (rods.pool.PoolRules); unset keeps RODS_* defaults."""

    # the ranges are rods.pool.PoolRules's; r̄ (a mean progress reward) lies in [0, 1]
    beta: float | None = Field(None, ge=0.0, le=1.0)  # most staged promoted per epoch, fraction of active
    p_max: int | None = Field(None, ge=0)  # most synthetic tasks active at once
    trial_below: float | None = Field(None, ge=0.0, le=1.0)  # synthetic task dropped when its first r̄ is below
    retire_mastered_above: float | None = Field(None, ge=0.0, le=1.0)  # recent r̄ above this retires (mastered)
    retire_hard_below: float | None = Field(None, ge=0.0, le=1.0)  # recent r̄ below this retires (hard)
    retire_min_obs: int | None = Field(None, ge=1)  # observations before mastered/hard retirement applies
    history_k: int | None = Field(None, ge=1, le=255)  # group means kept per task
    stale_steps: int | None = Field(None, ge=1)  # unobserved this many steps → retired as stale
    seeds_can_retire: bool | None = None  # whether seeds may retire
    sample_mode: Literal["uniform", "boundary"] | None = None  # how batches are drawn
    staged_cap: int | None = Field(None, ge=0)  # most tasks waiting in staged (0: no cap)
    staged_max_age: int | None = Field(None, ge=0)  # staged longer than this many steps → retired (0: never)

    @model_validator(mode="after")
    def _hard_below_mastered(self) -> PoolConfig:
        low, high = self.retire_hard_below, self.retire_mastered_above
        if low is not None and high is not None and low >= high:
            raise ValueError(
                f"retire_hard_below ({low}) must be below retire_mastered_above ({high}): "
                "otherwise every task retires"
            )
        return self

    def overrides(self) -> dict[str, object]:
        """The fields set in the config file, by their `rods.config.Settings` names."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class TrainConfig(_Section):
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    tasks: TaskConfig = Field(default_factory=TaskConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    env: EnvConfig = Field(default_factory=EnvConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    loop: LoopConfig = Field(default_factory=LoopConfig)
    pool: PoolConfig = Field(default_factory=PoolConfig)

    @model_validator(mode="after")
    def _engine_has_its_device(self) -> TrainConfig:
        if self.rollout.engine == "vllm" and self.policy.device == "cpu":
            raise ValueError("rollout.engine = 'vllm' needs a CUDA device; set policy.device = 'cuda' or use engine 'hf'")
        return self


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file and the field."""


def read_toml(path: Path) -> dict[str, Any]:
    """The parsed file, or a ConfigError saying why it cannot be read."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory; give a TOML config file, e.g. configs/demo.toml") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason}); save it as UTF-8") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read it ({e.strerror or e})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None


def validate(raw: dict[str, Any], where: str) -> TrainConfig:
    """`raw` (a parsed file, or a config's dump with CLI overrides) as a TrainConfig, or one
    ConfigError line: `where: section.field = value: the allowed range`."""
    from trainer.config_check import describe

    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f"{where}: {describe(e, TrainConfig)}") from None


def load_config(path: str | Path | None) -> TrainConfig:
    """Read and check a TOML config (None: all defaults)."""
    if path is None:
        return TrainConfig()
    path = Path(path)
    return validate(read_toml(path), str(path))
