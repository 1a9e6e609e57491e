"""`rods synth run|validate` as a user runs them (typer's runner; no model, no services)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from synth_fakes import ScriptedBackend
from typer.testing import CliRunner

from cli.synth import synth_app
from graphs.synthesis.graph import synthesize
from rods.tasks import Task, get_bfcl_task, read_tasks, split_ids, write_tasks

runner = CliRunner()
SEED_ID = "multi_turn_base_5"


@pytest.fixture(scope="module")
def variant() -> Task:
    seed = get_bfcl_task(SEED_ID)
    edit = lambda name, args: {k: (f"{v} (cli)" if k == "content" else v) for k, v in args.items()}  # noqa: E731
    (task,) = synthesize(seed, n_variants=1, backend=ScriptedBackend(seed, edit=edit)).tasks
    return task


def test_validate_prints_per_reason_results(tmp_path, variant):
    seed = get_bfcl_task(SEED_ID)
    bad_gt = [list(t) for t in variant.ground_truth]
    bad_gt[2] = [f"post_tweet(content={'z' * 240!r})"]
    bad = Task.model_validate(
        {
            **variant.model_dump(),
            "id": "multi_turn_base_xbad",
            "ground_truth": bad_gt,
            "question": [[{"role": "user", "content": "Step 1: call post_tweet"}]] + [m for m in variant.model_dump()["question"][1:]],
        }
    )
    path = tmp_path / "tasks.jsonl"
    write_tasks(path, [seed, variant, bad])
    res = runner.invoke(synth_app, ["validate", str(path), "--json"])
    assert res.exit_code == 1, res.output
    out = json.loads(res.stdout)
    assert out["tasks"] == 3 and out["passed"] == 2
    assert out["per_task"][variant.id] == [] and out["per_task"][SEED_ID] == []
    assert out["per_task"]["multi_turn_base_xbad"] == [
        "pool_duplicate", "query_leaks_reasoning", "query_names_function", "string_too_long"
    ]
    assert out["reasons"]["string_too_long"] == 1
    table = runner.invoke(synth_app, ["validate", str(path)])
    assert table.exit_code == 1 and "2/3 tasks pass" in table.stdout and "string_too_long" in table.stdout
    good = tmp_path / "good.jsonl"
    write_tasks(good, [variant])
    assert runner.invoke(synth_app, ["validate", str(good)]).exit_code == 0


def test_validate_bad_files(tmp_path):
    res = runner.invoke(synth_app, ["validate", str(tmp_path / "missing.jsonl")])
    assert res.exit_code == 2 and "no such task file" in res.output
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "multi_turn_base_1"}\n')
    res = runner.invoke(synth_app, ["validate", str(broken)])
    assert res.exit_code == 2 and "broken.jsonl:1" in res.output


def test_run_refuses_a_held_out_seed(tmp_path):
    eval_id = sorted(split_ids("eval"))[0]
    res = runner.invoke(synth_app, ["run", "--seed", eval_id, "--out", str(tmp_path / "o.jsonl")])
    assert res.exit_code == 2
    assert "held-out evaluation task" in res.output
    assert not (tmp_path / "o.jsonl").exists()


def test_run_argument_errors(tmp_path, variant):
    out = str(tmp_path / "o.jsonl")
    res = runner.invoke(synth_app, ["run", "--seed", SEED_ID, "--backend", "llm", "--out", out])
    assert res.exit_code == 2 and "needs --model" in res.output
    res = runner.invoke(synth_app, ["run", "--seed", SEED_ID, "--backend", "magic", "--out", out])
    assert res.exit_code == 2 and "'procedural' or 'llm'" in res.output
    res = runner.invoke(synth_app, ["run", "--seed", "multi_turn_base_9999", "--out", out])
    assert res.exit_code == 2 and "--tasks" in res.output
    tasks = tmp_path / "t.jsonl"
    write_tasks(tasks, [variant])
    res = runner.invoke(synth_app, ["run", "--seed", "nope", "--tasks", str(tasks), "--out", out])
    assert res.exit_code == 2 and "no task with id 'nope'" in res.output


def test_rods_does_not_import_graphs():
    code = "import sys, cli.synth, cli.app; print(any(m.split('.')[0] == 'graphs' for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_run_procedural_then_validate_then_run_from_a_task_file(tmp_path):
    out = tmp_path / "v.jsonl"
    res = runner.invoke(synth_app, ["run", "--seed", SEED_ID, "--n", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.stdout.strip().splitlines()[-1])
    tasks = read_tasks(out)
    assert metrics["synth/accepted"] == len(tasks) >= 1
    assert all(t.rods.parent_id == SEED_ID and t.rods.synthesizer == "procedural" for t in tasks)
    assert runner.invoke(synth_app, ["validate", str(out)]).exit_code == 0
    # a synthetic task is a valid seed when it comes from a file
    out2 = tmp_path / "v2.jsonl"
    res = runner.invoke(
        synth_app, ["run", "--seed", tasks[0].id, "--tasks", str(out), "--out", str(out2), "--rng-seed", "3"]
    )
    assert res.exit_code == 0, res.output
    (child,) = read_tasks(out2)
    for t in [child]:
        assert t.rods.parent_id == tasks[0].id and t.rods.root_id == SEED_ID and t.rods.generation == 2


def test_run_builds_the_configured_llm_backend(tmp_path, monkeypatch):
    """`rods synth run` samples the synthesizer as configured (RODS_SYNTH_TEMPERATURE/TOP_P),
    like the worker: both build the backend with `graphs.synthesis.backends.make_backend`."""
    import graphs.synthesis.llm as llm

    built = []

    def fake_llm_backend(model, **kwargs):  # stands in for LLMBackend: no model is called
        built.append({"model": model, **kwargs})
        return ScriptedBackend(get_bfcl_task(SEED_ID))

    monkeypatch.setattr(llm, "LLMBackend", fake_llm_backend)
    monkeypatch.setenv("RODS_SYNTH_TEMPERATURE", "0.3")
    monkeypatch.setenv("RODS_SYNTH_TOP_P", "0.5")
    monkeypatch.setenv("RODS_SYNTH_API_BASE", "http://synth-llm:8000/v1")
    out = tmp_path / "o.jsonl"
    args = ["run", "--seed", SEED_ID, "--backend", "llm", "--model", "openai/m", "--out", str(out)]
    res = runner.invoke(synth_app, args)
    assert res.exit_code == 0, res.output
    client = {k: v for k, v in built[0].items() if k not in ("model", "api_base", "temperature", "top_p")}
    assert built == [
        {"model": "openai/m", "api_base": "http://synth-llm:8000/v1", "temperature": 0.3, "top_p": 0.5, **client}
    ]
    assert client["timeout_s"] == 120.0 and client["num_retries"] == 0  # RODS_SYNTH_* client defaults
    # a flag wins (another --out: the same scripted variant appended to o.jsonl would be a duplicate)
    res = runner.invoke(synth_app, [*args[:-1], str(tmp_path / "o2.jsonl"), "--api-base", "http://other:1/v1"])
    assert res.exit_code == 0 and built[-1]["api_base"] == "http://other:1/v1"
    monkeypatch.setenv("RODS_SYNTH_BACKEND", "magic")
    res = runner.invoke(synth_app, ["run", "--seed", SEED_ID, "--out", str(out)])
    assert res.exit_code == 2 and "RODS_SYNTH_BACKEND='magic'" in res.output and "'llm'" in res.output
