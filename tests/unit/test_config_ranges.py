"""Every field of a run config has its valid range, checked when the file is read (trainer/config.py,
trainer/config_check.py): one line with the field's path, the value and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
from annotated_types import Ge, Gt
from pydantic import BaseModel

from trainer.config import ConfigError, TrainConfig, load_config, validate
from trainer.config_check import allowed, check_paths, defaults_note
from trainer.model_paths import model_problem, resolve_checkpoint

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

# (section, field, a bad value, words of the line)
BAD: list[tuple[str, str, object, str]] = [
    ("policy", "seed", -1, "policy.seed = -1: must be an integer from 0 to 4294967295"),
    ("policy", "model", "", "policy.model = ''"),
    ("policy", "device", "gpu", "policy.device = 'gpu': must be one of 'auto', 'cpu', 'cuda'"),
    ("policy", "bf16", "maybe", "policy.bf16 = 'maybe': must be true or false"),
    ("tasks", "subset", "tiny", "tasks.subset = 'tiny': must be one of 'all', 'demo'"),
    ("tasks", "categories", ["base", "long"], "tasks.categories: unknown ['long']"),
    ("tasks", "categories", [], "tasks.categories: empty"),
    ("rollout", "group_size", 1, "rollout.group_size = 1: must be an integer from 2 to 1024"),
    ("rollout", "group_size", "16", "rollout.group_size = '16': must be an integer"),
    ("rollout", "group_size", 2.5, "rollout.group_size = 2.5: must be an integer from 2 to 1024"),
    ("rollout", "tasks_per_step", 0, "rollout.tasks_per_step = 0: must be an integer from 1 to 4096"),
    ("rollout", "temperature", 0.0, "rollout.temperature = 0.0: must be a number > 0.0 and ≤ 10.0"),
    ("rollout", "top_p", 1.5, "rollout.top_p = 1.5: must be a number > 0.0 and ≤ 1.0"),
    ("rollout", "top_p", 0, "rollout.top_p = 0: must be a number > 0.0"),
    ("rollout", "max_new_tokens", 0, "rollout.max_new_tokens = 0: must be an integer from 1 to"),
    ("rollout", "max_total_tokens", 1, "rollout.max_total_tokens = 1: must be an integer from 2 to"),
    ("rollout", "max_steps_per_turn", 0, "rollout.max_steps_per_turn = 0: must be an integer from 1 to 100"),
    ("rollout", "refill_frac", 1.5, "rollout.refill_frac = 1.5: must be a number from 0.0 to 1.0"),
    ("rollout", "engine", "vlm", "rollout.engine = 'vlm': must be one of 'hf', 'vllm'"),
    ("optim", "lr", 0, "optim.lr = 0: must be a number > 0.0 and ≤ 1.0"),
    ("optim", "lr", 3.0, "optim.lr = 3.0: must be a number > 0.0 and ≤ 1.0"),
    ("optim", "weight_decay", -0.1, "optim.weight_decay = -0.1: must be a number from 0.0 to 1.0"),
    ("optim", "betas", [0.9, 1.0], "each AdamW beta must be in [0, 1)"),
    ("optim", "grad_clip", 0, "optim.grad_clip = 0: must be a number > 0.0"),
    ("optim", "clip_low", 1.0, "optim.clip_low = 1.0: must be a number > 0.0 and < 1.0"),
    ("optim", "clip_low", -0.2, "optim.clip_low = -0.2: must be a number > 0.0 and < 1.0"),
    ("optim", "clip_high", 0, "optim.clip_high = 0: must be a number > 0.0 and ≤ 10.0"),
    ("optim", "kl_coef", -0.01, "optim.kl_coef = -0.01: must be a number from 0.0 to 100.0"),
    ("optim", "micro_batch", 0, "optim.micro_batch = 0: must be an integer from 1 to 4096"),
    ("optim", "ppo_epochs", 0, "optim.ppo_epochs = 0: must be an integer from 1 to 100"),
    ("loop", "steps", 0, "loop.steps = 0: must be an integer from 1 to"),
    ("loop", "steps", "many", "loop.steps = 'many': must be an integer"),
    ("loop", "steps_per_epoch", -1, "loop.steps_per_epoch = -1: must be an integer ≥ 0"),
    ("loop", "checkpoint_every", 0, "loop.checkpoint_every = 0: must be an integer ≥ 1"),
    ("loop", "keep_checkpoints", -1, "loop.keep_checkpoints = -1: must be an integer ≥ 0"),
    ("loop", "request_budget", -4, "loop.request_budget = -4: must be an integer from 0 to 100000 (or leave it out)"),
    ("loop", "mode", "rod", "loop.mode = 'rod': must be one of 'rods', 'static', 'uniform'"),
    ("loop", "run", "my run", "loop.run: bad run name 'my run'"),
    ("pool", "beta", 1.5, "pool.beta = 1.5: must be a number from 0.0 to 1.0"),
    ("pool", "p_max", -1, "pool.p_max = -1: must be an integer ≥ 0"),
    ("pool", "trial_below", 2, "pool.trial_below = 2: must be a number from 0.0 to 1.0"),
    ("pool", "retire_mastered_above", 1.2, "pool.retire_mastered_above = 1.2: must be a number from 0.0 to 1.0"),
    ("pool", "retire_hard_below", -0.1, "pool.retire_hard_below = -0.1: must be a number from 0.0 to 1.0"),
    ("pool", "retire_min_obs", 0, "pool.retire_min_obs = 0: must be an integer ≥ 1"),
    ("pool", "history_k", 300, "pool.history_k = 300: must be an integer from 1 to 255"),
    ("pool", "stale_steps", 0, "pool.stale_steps = 0: must be an integer ≥ 1"),
    ("pool", "sample_mode", "weighted", "pool.sample_mode = 'weighted': must be one of 'uniform', 'boundary'"),
    ("pool", "staged_cap", -1, "pool.staged_cap = -1: must be an integer ≥ 0"),
    ("pool", "staged_max_age", -1, "pool.staged_max_age = -1: must be an integer ≥ 0"),
    ("env", "hints", "on", "env.hints = 'on': must be true or false"),
    ("pool", "seeds_can_retire", 1, "pool.seeds_can_retire = 1: must be true or false (or leave it out)"),
    ("rollout", "compact_tools", "yes", "rollout.compact_tools = 'yes': must be true or false"),
]


@pytest.mark.parametrize(("section", "field", "value", "words"), BAD, ids=[f"{s}.{f}={v!r}" for s, f, v, _ in BAD])
def test_a_value_out_of_range_is_one_line_naming_field_and_range(section, field, value, words) -> None:
    with pytest.raises(ConfigError) as info:
        validate({section: {field: value}}, "x.toml")
    line = str(info.value)
    assert line.startswith("x.toml: ") and words in line and "\n" not in line
    assert "pydantic" not in line and "errors.pydantic.dev" not in line


def _sections() -> list[tuple[str, type[BaseModel]]]:
    return [(name, f.annotation) for name, f in TrainConfig.model_fields.items()]  # type: ignore[misc]


def test_every_numeric_field_has_a_range_and_is_in_the_table_above() -> None:
    covered = {(s, f) for s, f, _, _ in BAD}
    for section, model in _sections():
        for name, field in model.model_fields.items():
            if field.annotation in (int, float, int | None, float | None):
                assert any(isinstance(m, Ge | Gt) for m in field.metadata), f"{section}.{name} has no lower bound"
            assert (section, name) in covered or name == "init_from", f"{section}.{name} untested"


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ({"rollout": {"max_new_tokens": 1024, "max_total_tokens": 1024}}, "max_new_tokens (1024) must be below max_total_tokens (1024)"),
        ({"pool": {"retire_hard_below": 0.5, "retire_mastered_above": 0.4}}, "retire_hard_below (0.5) must be below retire_mastered_above (0.4)"),
        ({"policy": {"device": "cpu"}, "rollout": {"engine": "vllm"}}, "rollout.engine = 'vllm' needs a CUDA device"),
        ({"rollout": {"gruop_size": 4}}, "rollout.gruop_size: unknown field; did you mean rollout.group_size?"),
        ({"optim": {"learning_rate": 1e-5}}, "optim.learning_rate: unknown field; did you mean optim.lr?"),
        ({"optim": {"kl": 0.1}}, "optim.kl: unknown field; did you mean optim.kl_coef?"),
        ({"rollout": {"num_generations": 8}}, "did you mean rollout.group_size?"),
        ({"rollout": {"lr": 1e-5}}, "rollout.lr: unknown field; it is a field of [optim]: move it there"),
        ({"optim": {"xyz": 1}}, "optim.xyz: unknown field (fields of [optim]: lr, "),
        ({"rollot": {}}, "[rollot]: unknown section; did you mean [rollout]?"),
        ({"steps": 3}, "'steps' is not a section: it is a field of [loop]; put it under [loop]"),
        ({"rollout": 16}, "[rollout] must be a section"),
        ({"rollout": {"group_size": 1, "top_p": 2}}, "(and 1 more mistake)"),
    ],
)
def test_rules_across_fields_and_unknown_names(raw, words) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        validate(raw, "x.toml")
    assert words in str(info.value)


def test_the_allowed_range_is_read_from_the_fields_own_constraints() -> None:
    from trainer.config import RolloutConfig

    assert allowed(RolloutConfig, "group_size") == "an integer from 2 to 1024"
    assert allowed(RolloutConfig, "engine") == "one of 'hf', 'vllm'"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_config_passes(path: Path) -> None:
    if path.name.startswith("experiment-"):
        from cli.experiment_config import load

        load(path)
    else:
        load_config(path)


def test_a_missing_section_gets_a_line_with_the_defaults_it_runs_with() -> None:
    note = defaults_note({"policy": {"model": "tiny"}}, "x.toml")
    assert note is not None and "\n" not in note
    assert note.startswith("x.toml has no [tasks], [rollout], [optim], [loop]: using the defaults")
    assert "group_size=16" in note and "tasks_per_step=32" in note and "paper-sized" in note
    full = {s: {} for s in ("policy", "tasks", "rollout", "optim", "loop")}
    assert defaults_note(full, "x.toml") is None
    assert defaults_note({}, None).startswith("no --config given: using the defaults")  # type: ignore[union-attr]
    cfg = TrainConfig().model_copy(update={"loop": TrainConfig().loop.model_copy(update={"steps": 3})})
    assert "steps=3" in defaults_note({}, None, cfg)  # type: ignore[operator]


# ---------------------------------------------------------------- model paths


def _model(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    (path / "model.safetensors").write_bytes(b"")
    return path


def _with_model(model: str | None = None, init_from: str | None = None) -> TrainConfig:
    policy = {k: v for k, v in (("model", model), ("init_from", init_from)) if v is not None}
    return TrainConfig.model_validate({"policy": policy})


def test_model_problem_says_what_a_path_is_instead(tmp_path: Path) -> None:
    assert model_problem(_model(tmp_path / "m")) is None
    assert "does not exist" in model_problem(tmp_path / "nope")  # type: ignore[operator]
    (tmp_path / "empty").mkdir()
    assert "is an empty directory" in model_problem(tmp_path / "empty")  # type: ignore[operator]
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "config.json").write_text("{}")
    assert "has a config.json but no weights" in model_problem(tmp_path / "conf")  # type: ignore[operator]
    (tmp_path / "f.gguf").write_bytes(b"GGUF")
    assert "is a file" in model_problem(tmp_path / "f.gguf")  # type: ignore[operator]
    run = tmp_path / "run"
    _model(run / "sft" / "best")
    assert f"is a run directory, not a model; its model is {run / 'sft' / 'best'}" in model_problem(run)  # type: ignore[operator]
    (tmp_path / "fresh" / "checkpoints").mkdir(parents=True)
    assert "run directory with no saved checkpoint yet" in model_problem(tmp_path / "fresh")  # type: ignore[operator]


def test_policy_model_accepts_tiny_packaged_names_and_hub_ids(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("tiny", "gemma-3-270m", "Qwen/Qwen3-4B-Instruct-2507"):
        assert check_paths(_with_model(name)).policy.model == name
    with pytest.raises(ConfigError, match=r"policy.model = 'gemma-3-270M': not 'tiny', not a packaged model .*did you mean 'gemma-3-270m'"):
        check_paths(_with_model("gemma-3-270M"), "x.toml")
    (tmp_path / "runs").mkdir()
    with pytest.raises(ConfigError, match=r"policy.model = 'runs/x': runs/x does not exist"):
        check_paths(_with_model("runs/x"), "x.toml")  # runs/ is a local directory: not a hub id
    _model(tmp_path / "runs" / "demo" / "sft" / "best")
    with pytest.raises(ConfigError, match=r"is a run directory, not a model; its model is runs/demo/sft/best"):
        check_paths(_with_model("runs/demo"), "x.toml")


def test_init_from_resolves_a_run_directory_as_eval_does(tmp_path: Path) -> None:
    run = tmp_path / "demo"
    _model(run / "sft" / "best")  # `rods sft --run-dir demo` (and the demo's warm start)
    assert resolve_checkpoint(run) == run / "sft" / "best"
    assert check_paths(_with_model(init_from=str(run))).policy.init_from == str(run / "sft" / "best")
    train = tmp_path / "train"
    (_model(train / "checkpoints" / "step_000004") / "trainer_state.pt").write_bytes(b"")
    assert check_paths(_with_model(init_from=str(train))).policy.init_from == str(train / "checkpoints" / "step_000004")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"^--init-from '.*empty': .*empty is an empty directory$"):
        check_paths(_with_model(init_from=str(tmp_path / "empty")), "x.toml", "--init-from")
    with pytest.raises(ConfigError, match=r"x.toml: policy.init_from = '.*nope': .*does not exist"):
        check_paths(_with_model(init_from=str(tmp_path / "nope")), "x.toml")


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"RODS_BETA": "2"}, "RODS_BETA='2': must be ≤ 1.0"),
        ({"RODS_CONNECT_TIMEOUT_S": "0"}, "RODS_CONNECT_TIMEOUT_S='0': must be > 0.0"),
        ({"RODS_CONNECT_RETRIES": "0"}, "RODS_CONNECT_RETRIES='0': must be ≥ 1"),
        ({"RODS_REQUEST_BUDGET": "-1"}, "RODS_REQUEST_BUDGET='-1': must be ≥ 0"),
        ({"RODS_SYNTH_TOP_P": "7"}, "RODS_SYNTH_TOP_P='7': must be ≤ 1.0"),
    ],
)
def test_process_settings_have_ranges_too(env, words, monkeypatch) -> None:
    from rods.config import Settings, SettingsError

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(SettingsError) as info:
        Settings()
    assert words in str(info.value)
