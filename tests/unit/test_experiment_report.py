"""The experiment report's numbers on a fixture whose answers are known by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from report.experiment import mean_ci, summarize, trajectories_to_reach, write_experiment_report


def test_mean_ci_is_the_t_interval() -> None:
    m, ci = mean_ci([1.0, 2.0, 3.0])
    assert m == 2.0 and ci == pytest.approx(4.303 * 1.0 / math.sqrt(3))
    assert mean_ci([0.5]) == (0.5, None)
    assert mean_ci([]) == (None, None)
    assert mean_ci([float("nan"), 1.0]) == (1.0, None)


def test_trajectories_to_reach_interpolates_between_evaluations() -> None:
    pts = [(100, 0.1), (200, 0.3), (300, 0.5)]
    assert trajectories_to_reach(pts, 0.4) == pytest.approx(250.0)
    assert trajectories_to_reach(pts, 0.05) == 100
    assert trajectories_to_reach(pts, 0.6) is None


def _run(root: Path, arm: str, seed: int, zero_var: list[float], finals: list[float]) -> None:
    d = root / arm / f"seed{seed}"
    d.mkdir(parents=True)
    rows = [{"step": i + 1, "reward/frac_zero_var": z, "train/frac_tokens_nonzero_adv": 1 - z,
             "reward/mean": 0.5} for i, z in enumerate(zero_var)]  # fmt: skip
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    evals = [{"step": 2 * (k + 1), "trajectories": 48 * (k + 1), "protocol": "train",
              "overall": {"progress": v, "accuracy": 100 * v, "n": 10}} for k, v in enumerate(finals)]  # fmt: skip
    (d / "evals.json").write_text(json.dumps(evals))


@pytest.fixture
def exp_dir(tmp_path: Path) -> Path:
    plan = {"arms": ["static", "rods"], "seeds": [0, 1], "steps": 4, "trajectories_per_step": 24}
    (tmp_path / "experiment-plan.json").write_text(json.dumps(plan))
    _run(tmp_path, "static", 0, [0.2, 0.4, 0.6, 0.8], [0.10, 0.20])
    _run(tmp_path, "static", 1, [0.2, 0.4, 0.4, 0.6], [0.10, 0.30])
    _run(tmp_path, "rods", 0, [0.2, 0.2, 0.2, 0.2], [0.25, 0.40])
    _run(tmp_path, "rods", 1, [0.2, 0.2, 0.0, 0.2], [0.15, 0.35])
    return tmp_path


def test_summary_numbers(exp_dir: Path) -> None:
    s = summarize(exp_dir)
    assert s["protocols"] == ["train"] and s["notes"] == []
    static, rods = s["arms"]["static"], s["arms"]["rods"]
    # second half = steps 3 and 4: static seeds 0.7 and 0.5, rods 0.2 and 0.1
    assert static["zero_var_second_half"]["mean"] == pytest.approx(0.6)
    assert rods["zero_var_second_half"]["mean"] == pytest.approx(0.15)
    final_static = static["held_out"]["train"]["points"][-1]
    assert final_static["trajectories"] == 96 and final_static["progress"] == pytest.approx(0.25)
    comp = s["comparisons"]["train"]
    assert comp["static_final_progress"] == pytest.approx(0.25)
    # rods's mean curve: 0.2 at 48, 0.375 at 96 → reaches 0.25 at 48 + 0.05/0.175 × 48
    assert comp["rods"]["trajectories_to_static_final"] == pytest.approx(48 + 0.05 / 0.175 * 48)
    assert comp["static"]["trajectories_to_static_final"] == 96
    # paired by seed: (0.40 − 0.20, 0.35 − 0.30) = (0.20, 0.05)
    assert comp["rods"]["final_minus_static"] == pytest.approx(0.125)
    assert comp["rods"]["final_minus_static_ci95"] == pytest.approx(12.706 * 0.075 / math.sqrt(2) * math.sqrt(2))


def test_page_and_json_are_written_and_missing_inputs_are_notes(exp_dir: Path) -> None:
    (exp_dir / "rods" / "seed1" / "evals.json").unlink()
    page = write_experiment_report(exp_dir)
    text = page.read_text()
    assert "protocol <code>train</code>" in text and "<svg" in text and "missing:" in text
    data = json.loads((exp_dir / "experiment.json").read_text())
    assert any("rods/seed1/evals.json" in n for n in data["notes"])
    assert data["arms"]["rods"]["held_out"]["train"]["points"][-1]["n_seeds"] == 1


def test_training_seed_rows_stay_out_of_the_held_out_numbers_and_get_their_own_table(exp_dir: Path) -> None:
    for arm, seed, rp in (("static", 0, 0.5), ("static", 1, 0.7), ("rods", 0, 0.9)):
        path = exp_dir / arm / f"seed{seed}" / "evals.json"
        rows = json.loads(path.read_text())
        rows.append({"step": 4, "trajectories": 96, "protocol": "train", "split": "seeds",
                     "overall": {"progress": rp, "accuracy": 10.0, "n": 27}})  # fmt: skip
        path.write_text(json.dumps(rows))
    (exp_dir / "warmstart").mkdir()
    (exp_dir / "warmstart" / "evals.json").write_text(json.dumps([
        {"step": 0, "trajectories": 0, "protocol": "train", "split": "heldout", "overall": {"progress": 0.01, "accuracy": 0.0}},
        {"step": 0, "trajectories": 0, "protocol": "train", "split": "seeds", "overall": {"progress": 0.33, "accuracy": 0.0}},
    ]))  # fmt: skip
    s = summarize(exp_dir)
    # the held-out numbers are those of test_summary_numbers, untouched by the seed rows
    assert s["arms"]["static"]["held_out"]["train"]["points"][-1]["progress"] == pytest.approx(0.25)
    assert s["comparisons"]["train"]["rods"]["final_minus_static"] == pytest.approx(0.125)
    assert s["arms"]["static"]["training_seeds"]["progress"] == pytest.approx(0.6)
    assert s["arms"]["static"]["training_seeds"]["n_seeds"] == 2 and s["arms"]["rods"]["training_seeds"]["n_seeds"] == 1
    text = write_experiment_report(exp_dir).read_text()
    assert "The training seeds, final checkpoint" in text and text.count("warm start (before training)") == 2
    assert "0.330" in text and "0.010" in text
    md = (exp_dir / "experiment.md").read_text()
    assert "| static | 0.100 / 0.250 | 0.250 ± " in md and "| rods | 0.200 / 0.375 |" in md
    assert "| warm start | 0.330 | 0.0 | — |" in md and "| static | 0.600 ± " in md
