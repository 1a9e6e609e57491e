"""The `rods` command as a user runs it (typer's runner, no services)."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from rods import tasks as T
from rods.env import GroundTruthCache

runner = CliRunner()


def test_data_ids_prints_each_split():
    res = runner.invoke(app, ["data", "ids", "--split", "eval"])
    assert res.exit_code == 0
    ids = res.stdout.split()
    assert len(ids) == 400 and set(ids) == T.split_ids("eval")
    assert runner.invoke(app, ["data", "ids", "--split", "test"]).exit_code == 2


def test_env_score_by_id_inline_and_bad_lines(tmp_path):
    cache = GroundTruthCache()
    task = T.get_bfcl_task("multi_turn_base_1")
    gt = cache.runtime(task).ground_truth
    calls = [[c.model_dump() for c in t.calls] for t in gt.turns]
    inline = task.to_bfcl()
    inline["id"] = "multi_turn_base_custom"
    lines = [
        {"task_id": task.id, "calls": calls},
        {"task_id": task.id, "calls": [[{"name": "pwd", "arguments": {}}]]},
        {"task": inline, "calls": calls},
        {"task_id": "multi_turn_base_9999", "calls": []},
        {"task_id": task.id, "calls": [[{"arguments": {}}]]},
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(x) for x in lines) + "\n{oops\n")
    out = tmp_path / "out.jsonl"
    res = runner.invoke(app, ["env", "score", str(src), "--out", str(out)])
    assert res.exit_code == 1  # some lines could not be scored …
    rows = [json.loads(line) for line in out.open()]
    assert len(rows) == 6  # … and every line still has its record
    assert rows[0] == {"task_id": task.id, "turn_success": [True] * task.n_turns, "progress": 1.0,
                       "correct": True, "errors": {}}
    assert rows[1]["progress"] == 0.0 and rows[1]["correct"] is False
    assert rows[1]["turn_success"] == [False] * task.n_turns
    assert rows[2]["task_id"] == "multi_turn_base_custom" and rows[2]["correct"]
    assert "multi_turn_base_9999" in rows[3]["error"]
    assert "calls[0][0]" in rows[4]["error"]
    assert rows[5]["line"] == 6 and "error" in rows[5]


def test_env_replay_prints_turns():
    res = runner.invoke(app, ["env", "replay", "multi_turn_miss_func_0"])
    assert res.exit_code == 0, res.output
    assert "turn 3" in res.output and "reveals: sort" in res.output
    assert "mkdir(dir_name='temp')" in res.output
    assert runner.invoke(app, ["env", "replay", "nope"]).exit_code == 2


def test_demo_reports_a_missing_config_clearly(tmp_path):
    res = runner.invoke(app, ["demo", "--run-dir", str(tmp_path), "--config", str(tmp_path / "nope.toml")])
    assert res.exit_code == 1 and "nope.toml" in res.output and "not found" in res.output


def test_data_stats_json():
    res = runner.invoke(app, ["data", "stats", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["total"] == 800
    assert out["by_category"]["miss_param"] == {"train": 100, "eval": 100}
    assert sum(out["by_class"]["GorillaFileSystem"].values()) == 200
    for side in ("train", "eval"):
        hist = out["signature_histograms"][side]
        assert {"depth", "topology", "turns"} <= set(hist)
        assert sum(hist["depth"].values()) == 400


def test_config_refill_frac_is_checked(tmp_path: Path) -> None:
    from trainer.config import ConfigError, load_config

    bad = tmp_path / "bad.toml"
    bad.write_text("[rollout]\nrefill_frac = 1.5\n")
    with pytest.raises(ConfigError, match="refill_frac"):
        load_config(bad)
    ok = tmp_path / "ok.toml"
    ok.write_text("[rollout]\nrefill_frac = 1.0\n")
    assert load_config(ok).rollout.refill_frac == 1.0
