"""`rods experiment`'s configs: every arm differs from `rods` in exactly one thing."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.experiment import ARMS, arm_config, heldout_tasks, load_experiment
from trainer.config import ConfigError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _diff(a: dict, b: dict, prefix: str = "") -> set[str]:
    out = set()
    for k in a.keys() | b.keys():
        if isinstance(a.get(k), dict) and isinstance(b.get(k), dict):
            out |= _diff(a[k], b[k], f"{prefix}{k}.")
        elif a.get(k) != b.get(k):
            out.add(prefix + k)
    return out


@pytest.mark.parametrize("name", ["experiment-cpu.toml", "experiment-paper.toml"])
def test_arms_differ_from_rods_in_one_thing(name: str) -> None:
    exp, cfg = load_experiment(CONFIGS / name)
    assert exp.experiment.arms == list(ARMS)
    rods = arm_config(cfg, "rods", 1, 24, 4).model_dump()
    expected = {"static": {"loop.mode"}, "uniform": {"loop.mode"}, "offline": {"loop.mode"},
                "env-hints": {"loop.mode", "env.hints"}}  # fmt: skip
    for arm, changed in expected.items():
        assert _diff(arm_config(cfg, arm, 1, 24, 4).model_dump(), rods) == changed, arm
    assert rods["policy"]["seed"] == 1 and rods["loop"]["steps"] == 24
    assert rods["loop"]["checkpoint_every"] == 6  # evaluations at each quarter of the budget


def test_heldout_set_is_the_eval_split_filtered_by_the_training_rule() -> None:
    _, cfg = load_experiment(CONFIGS / "experiment-cpu.toml")
    from rods.tasks import load_split

    held = heldout_tasks(cfg)
    eval_ids = {t.id for t in load_split("eval")}
    assert held and all(t.id in eval_ids and t.category == "base" for t in held)


def test_a_bad_experiment_file_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "x.toml"
    bad.write_text('[experiment]\narms = ["static", "nope"]\n')
    with pytest.raises(ConfigError, match="unknown arm"):
        load_experiment(bad)
    bad.write_text("[experiment]\n[loop]\nsteps = 'many'\n")
    with pytest.raises(ConfigError, match=r"loop.steps = 'many': must be an integer from 1 to"):
        load_experiment(bad)
    bad.write_text("[experiment]\neval_points = 0\n")
    with pytest.raises(ConfigError, match=r"experiment.eval_points = 0: must be an integer from 1 to 1000"):
        load_experiment(bad)
    bad.write_text("[experiment]\n[warm_start]\nlr = -1\n")
    with pytest.raises(ConfigError, match=r"warm_start.lr = -1: must be a number > 0.0 and ≤ 1.0"):
        load_experiment(bad)
    bad.write_text("[experiment]\n[experimnt]\n")
    with pytest.raises(ConfigError, match=r"did you mean \[experiment\]"):
        load_experiment(bad)


def test_a_train_config_given_to_experiment_says_it_has_no_experiment_section() -> None:
    with pytest.raises(ConfigError, match=r"demo.toml has no \[experiment\] section; it looks like a train config"):
        load_experiment(CONFIGS / "demo.toml")


def test_an_experiment_model_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    bad = tmp_path / "x.toml"
    bad.write_text(f"[experiment]\n[policy]\nmodel = '{tmp_path / 'm'}'\n")
    with pytest.raises(ConfigError, match="policy.model = .* is an empty directory"):
        load_experiment(bad)


def test_checkpoints_are_evaluated_held_out_and_the_last_on_the_training_seeds_once(tmp_path, monkeypatch) -> None:
    import json

    import trainer.evaluate
    from cli.experiment import evaluate_checkpoints, evaluate_warm_start

    calls: list[tuple[str, str, int, int | None]] = []

    class Report:
        def table(self) -> dict:
            return {"overall": {"progress": 0.5, "accuracy": 0.0, "n": 1}}

    def fake_evaluate(checkpoint, out_dir, *, tasks, limit, protocol, **kw):  # noqa: ANN001, ANN202
        calls.append((Path(checkpoint).name, protocol, len(tasks), limit))
        return Report()

    monkeypatch.setattr(trainer.evaluate, "evaluate", fake_evaluate)
    exp, cfg = load_experiment(CONFIGS / "experiment-cpu.toml")
    run = tmp_path / "run"
    for step in (6, 12):
        (run / "checkpoints" / f"step_{step}").mkdir(parents=True)
    old = {"step": 6, "trajectories": 144, "protocol": "train", "overall": {"progress": 0.1, "accuracy": 0.0}}
    (run / "evals.json").write_text(json.dumps([old]))  # written before splits existed: held-out
    rows = evaluate_checkpoints(run, cfg, ["train", "bfcl"], 25)
    n_held, n_seeds = len(heldout_tasks(cfg)), 27
    assert calls == [("step_6", "bfcl", n_held, 25), ("step_12", "train", n_held, 25),
                     ("step_12", "bfcl", n_held, 25), ("step_12", "train", n_seeds, None)]  # fmt: skip
    assert [(r["step"], r["protocol"], r.get("split")) for r in rows] == [
        (6, "train", None), (6, "bfcl", "heldout"), (12, "train", "heldout"), (12, "bfcl", "heldout"),
        (12, "train", "seeds")]  # fmt: skip
    calls.clear()
    assert evaluate_checkpoints(run, cfg, ["train", "bfcl"], 25) == rows and calls == []
    evaluate_warm_start(tmp_path, str(tmp_path / "ws"), cfg, ["train"], 25)
    evaluate_warm_start(tmp_path, str(tmp_path / "ws"), cfg, ["train"], 25)
    assert calls == [("ws", "train", n_held, 25), ("ws", "train", n_seeds, None)]
    assert [r["split"] for r in json.loads((tmp_path / "warmstart" / "evals.json").read_text())] == ["heldout", "seeds"]


def test_an_unfinished_arm_recorded_with_another_config_is_refused_before_any_arm_trains(tmp_path: Path) -> None:
    from cli.experiment import _arm_cfg, _check_resumes
    from rods.rundir import ConfigChanged

    _, cfg = load_experiment(Path("configs/experiment-cpu.toml"))
    best = tmp_path / "warm" / "best"
    arm_dir = tmp_path / "rods" / "seed1"
    (arm_dir / "checkpoints" / "step_000004").mkdir(parents=True)
    (arm_dir / "checkpoints" / "step_000004" / "trainer_state.pt").write_bytes(b"")
    (arm_dir / "checkpoints" / "latest").write_text("step_000004")
    recorded = _arm_cfg(cfg, "rods", 1, 24, 4, best)
    (arm_dir / "config.json").write_text(recorded.model_dump_json(indent=2))
    _check_resumes(tmp_path, cfg, ["static", "rods"], [1], 24, 4, best, False)  # same config: resumes
    changed = cfg.model_copy(update={"optim": cfg.optim.model_copy(update={"lr": cfg.optim.lr * 2})})
    with pytest.raises(ConfigChanged, match=r"rods/seed1 was trained to step 4 .*optim\.lr"):
        _check_resumes(tmp_path, changed, ["static", "rods"], [1], 24, 4, best, False)
    _check_resumes(tmp_path, changed, ["rods"], [1], 24, 4, best, True)  # allowed: train() keeps both
    (arm_dir / "done.json").write_text("{}")
    _check_resumes(tmp_path, changed, ["rods"], [1], 24, 4, best, False)  # a finished arm is not retrained
