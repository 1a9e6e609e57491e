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
    bad.write_text("[loop]\nsteps = 'many'\n")
    with pytest.raises(ConfigError, match="loop.steps"):
        load_experiment(bad)
