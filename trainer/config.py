"""The trainer's one config object, read from TOML (`rods train --config FILE`).

Every field has a default and a one-line comment. Sections in the TOML file map to the nested
models below (`[policy]`, `[tasks]`, `[rollout]`, `[env]`, `[optim]`, `[loop]`, `[pool]`);
unknown keys are errors, so a typo is caught at start-up with the file and the field named.
Redis, the detector and the buffer rules are process settings (`rods.config.Settings`,
environment variables), shared with the synthesis side; the config file may override the run
name and the detector budget (`[loop]`) and the buffer's lifecycle rules for this run (`[pool]`),
so that an experiment's arms carry their pool settings in their config files.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PolicyConfig(_Section):
    model: str = "tiny"  # "tiny" (build the local 4.7 M-param model), a local path, or a hub id
    init_from: str | None = None  # a checkpoint dir to start from (e.g. the SFT output)
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: cuda when available
    # bf16 autocast; master weights stay fp32. Off on CPUs without AVX512-BF16 (slower)
    bf16: bool = False
    seed: int = 0  # seeds model init, sampling and task order


class TaskConfig(_Section):
    subset: Literal["all", "demo"] = "all"  # demo: short base tasks the tiny model can learn
    categories: list[str] = Field(
        default_factory=lambda: ["base", "miss_func", "miss_param", "long_context"]
    )


class RolloutConfig(_Section):
    engine: Literal["hf", "vllm"] = "hf"  # vllm needs the `gpu` extra and a CUDA device
    group_size: int = 16  # G rollouts per task (paper: 16)
    tasks_per_step: int = 32  # B tasks per update (paper: 32 → 512 trajectories)
    temperature: float = 1.0  # sampling temperature
    top_p: float = 1.0  # nucleus sampling
    max_new_tokens: int = 256  # per assistant message
    max_total_tokens: int = 4096  # per trajectory; beyond it the episode is truncated
    max_steps_per_turn: int = 5  # assistant messages with calls per user turn (EnvTuning: 5)
    compact_tools: bool = False  # render only function names in the system line (tiny model)
    # hf engine: rows that finished a message are fed their next turn once they are this share
    # of the batch (1.0 = lock-step rounds; 0.1 measured fastest on CPU, bench_rollout.py)
    refill_frac: float = Field(default=0.1, ge=0.0, le=1.0)


class EnvConfig(_Section):
    # tool error messages carry actionable hints (what was wrong, which argument, what is
    # allowed): the environment-augmentation baseline (the env-hints arm); training only
    hints: bool = False


class OptimConfig(_Section):
    lr: float = 1e-6  # AdamW learning rate (paper: 1e-6)
    weight_decay: float = 0.0  # AdamW weight decay
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW betas
    grad_clip: float = 1.0  # max global grad norm (EnvTuning: 1.0)
    clip_low: float = 0.2  # ratio clip below 1 (ε_low; EnvTuning: 0.2)
    clip_high: float = 0.28  # ratio clip above 1 ("clip-higher", ε_high; EnvTuning: 0.28)
    kl_coef: float = 0.01  # β, KL to the frozen initial policy (paper: 0.01); 0 drops the reference
    micro_batch: int = 8  # trajectories per forward/backward; gradients accumulate to the step
    ppo_epochs: int = 1  # optimisation passes over each batch (1 = strictly on-policy)


class LoopConfig(_Section):
    # every mode samples the run's buffer with the same sampler; they differ in what is published:
    # rods: the detector's boundary requests; uniform: as many requests, for tasks drawn at
    # random from the batch; static: nothing (synthesis off)
    mode: Literal["rods", "static", "uniform"] = "rods"
    steps: int = 100  # GRPO updates
    steps_per_epoch: int = 0  # epoch boundary (promotion, retirement); 0 = pool size / B
    checkpoint_every: int = 10  # steps between checkpoints (always one at the end)
    keep_checkpoints: int = 2  # older checkpoints are deleted
    run: str | None = None  # Redis run name; default: RODS_RUN (the services read it too)
    request_budget: int | None = None  # override the detector's M per step


def default_of(section: type[BaseModel], name: str) -> Any:
    """The default declared here for `section.name`: run-time objects that take the same knob
    (`trainer.types.RolloutSettings`, `trainer.grpo.GRPOLossConfig`) default to it."""
    return section.model_fields[name].default


class PoolConfig(_Section):
    """Buffer lifecycle rules of this run (rods.pool.PoolRules); unset keeps RODS_* defaults."""

    beta: float | None = None  # most staged tasks promoted per epoch, fraction of active
    p_max: int | None = None  # most synthetic tasks active at once
    trial_below: float | None = None  # synthetic task dropped when its first r̄ is below this
    retire_mastered_above: float | None = None  # recent r̄ above this retires (mastered)
    retire_hard_below: float | None = None  # recent r̄ below this retires (hard)
    retire_min_obs: int | None = None  # observations before mastered/hard retirement applies
    history_k: int | None = None  # group means kept per task
    stale_steps: int | None = None  # unobserved this many steps → retired as stale
    seeds_can_retire: bool | None = None  # whether seeds may retire
    sample_mode: Literal["uniform", "boundary"] | None = None  # how batches are drawn
    staged_cap: int | None = None  # most tasks waiting in staged (0: no cap)
    staged_max_age: int | None = None  # staged longer than this many steps → retired (0: never)

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


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file and the field."""


def load_config(path: str | Path | None) -> TrainConfig:
    """Read a TOML config (None: all defaults)."""
    if path is None:
        return TrainConfig()
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: field {field!r}: {first['msg']}") from None
