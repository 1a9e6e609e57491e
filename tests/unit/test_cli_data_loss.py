"""Issue #25, part A, without services: what a command must never destroy, run as a user runs it
(`python -m cli …` in a subprocess, or typer's runner where a fake synthesizer is needed).

Each test here failed on the code before the fix: the demo deleted a `rods/` it did not make,
`env score F --out F` and `synth run --tasks F --out F` destroyed their input, `synth run`
truncated --out when it accepted nothing and replaced earlier variants on a rerun, a cut-off last
line made `synth validate` refuse the whole file, `rods sft` defaulted to the demo's cache.
"""

from __future__ import annotations

import inspect
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import sft as cli_sft
from cli.demo import DEMO, DemoDirRefused, check_run_dir, prepare_run_dir
from cli.synth import synth_app
from rods.rundir import MADE_MARKER, claim_made_dir
from rods.tasks import get_bfcl_task
from trainer.evaluate import default_eval_dir

ROOT = Path(__file__).resolve().parents[2]
SEED = "multi_turn_base_5"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
       "REDIS_URL": "redis://127.0.0.1:9/0", "RODS_CONNECT_RETRIES": "1"}  # fmt: skip  (no Redis is needed)


# the installed `rods` script, as a user runs it (`python -m cli` would import a `rods/` in the cwd)
RODS = [str(Path(sys.executable).parent / "rods")] if (Path(sys.executable).parent / "rods").exists() else [sys.executable, "-m", "cli"]


def rods(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*RODS, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=120)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_demo_refuses_a_directory_it_did_not_make_and_deletes_nothing(tmp_path: Path) -> None:
    repo = tmp_path / "repo"  # the repository root, as `rods demo --run-dir .` sees it
    (repo / "rods").mkdir(parents=True)
    (repo / "rods" / "__init__.py").write_text("# the package\n")
    (repo / "README.md").write_text("readme\n")
    before = _tree(repo)
    t0 = time.monotonic()
    res = rods("demo", "--run-dir", ".", cwd=repo)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "holds files that rods demo did not make" in res.stderr and "--reuse-dir" in res.stderr
    assert "Traceback" not in res.stderr and time.monotonic() - t0 < 30
    assert _tree(repo) == before and sorted(p.name for p in repo.iterdir()) == ["README.md", "rods"]
    res = rods("demo", "--run-dir", ".", "--reuse-dir", cwd=repo)  # even then: rods/ is not the demo's
    assert res.returncode == 2 and "was not made by rods demo" in res.stderr
    assert _tree(repo) == before


def test_demo_clears_only_the_subdirectories_it_made(tmp_path: Path) -> None:
    run = tmp_path / "demo"
    check_run_dir(run, reuse=False)  # new: fine
    prepare_run_dir(run)
    (run / "rods" / "metrics.jsonl").write_text("{}\n")
    (run / "sft" / "best").mkdir(parents=True)
    (run / "sft" / "best" / "config.json").write_text("{}")
    check_run_dir(run, reuse=False)  # the demo's own directory: fine
    prepare_run_dir(run)
    assert not (run / "rods" / "metrics.jsonl").exists() and (run / "rods" / MADE_MARKER).exists()
    assert (run / "sft" / "best" / "config.json").exists()  # the warm start is kept
    (run / "redis" / MADE_MARKER).unlink()  # a redis/ that someone else put there
    with pytest.raises(DemoDirRefused, match="redis exists and was not made by rods demo"):
        check_run_dir(run, reuse=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    check_run_dir(empty, reuse=False)
    other = tmp_path / "other"
    claim_made_dir(other, "rods sft")
    (other / "x.txt").write_text("")
    with pytest.raises(DemoDirRefused, match="x.txt"):  # another command's marker is not the demo's
        check_run_dir(other, reuse=False)
    check_run_dir(other, reuse=True)  # unless asked
    assert DEMO == "rods demo"


def test_env_score_refuses_its_input_as_output_before_reading_it(tmp_path: Path) -> None:
    src = tmp_path / "calls.jsonl"
    src.write_text(json.dumps({"task_id": "multi_turn_base_1", "calls": [[]]}) + "\n")
    before = src.read_bytes()
    for out in ("calls.jsonl", "./calls.jsonl", str(src)):
        res = rods("env", "score", "calls.jsonl", "--out", out, cwd=tmp_path)
        assert res.returncode == 2 and "is the input file" in res.stderr, res.stderr
        assert src.read_bytes() == before


def test_env_score_replaces_out_only_when_done(tmp_path: Path) -> None:
    src = tmp_path / "calls.jsonl"
    src.write_text(json.dumps({"task_id": "multi_turn_base_1", "calls": [[]]}) + "\n" + "\x00binary\n")
    out = tmp_path / "scores.jsonl"
    out.write_text("earlier results\n")
    res = rods("env", "score", str(src), "--out", str(out), cwd=tmp_path)
    assert res.returncode == 2 and "binary" in res.stderr
    assert out.read_text() == "earlier results\n"  # the old results stay when the run stops
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calls.jsonl", "scores.jsonl"]


def test_synth_run_refuses_tasks_as_out_and_appends_on_a_rerun(tmp_path: Path) -> None:
    tasks = tmp_path / "seeds.jsonl"
    tasks.write_text(json.dumps(get_bfcl_task(SEED).to_bfcl()) + "\n")
    before = tasks.read_bytes()
    res = rods("synth", "run", "--seed", SEED, "--tasks", "seeds.jsonl", "--out", "./seeds.jsonl", cwd=tmp_path)
    assert res.returncode == 2 and "is the input file" in res.stderr and tasks.read_bytes() == before
    out = tmp_path / "v.jsonl"
    assert rods("synth", "run", "--seed", SEED, "--n", "2", "--out", "v.jsonl", cwd=tmp_path).returncode == 0
    first = out.read_text().splitlines()
    res = rods("synth", "run", "--seed", SEED, "--n", "2", "--out", "v.jsonl", "--rng-seed", "5", cwd=tmp_path)
    assert res.returncode == 0 and "appended to v.jsonl" in res.stderr
    lines = out.read_text().splitlines()
    assert lines[:2] == first and len(lines) == 4  # the earlier variants are kept
    ids = [json.loads(x)["id"] for x in lines]
    assert len(set(ids)) == 4  # and a rerun does not append them again


def test_synth_run_help_says_it_appends() -> None:
    res = CliRunner().invoke(synth_app, ["run", "--help"])
    assert "appended" in " ".join(res.output.split())


def test_synth_run_that_accepts_nothing_leaves_out_as_it_was(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import graphs.synthesis.graph as graph
    from graphs.synthesis.state import SynthesisResult

    def nothing(seed, n_variants, **_):  # type: ignore[no-untyped-def]
        return SynthesisResult(seed_id=seed.id, requested=n_variants, attempts=1, failures={"plan_failed": 1})

    monkeypatch.setattr(graph, "synthesize", nothing)
    out = tmp_path / "v.jsonl"
    out.write_text(json.dumps(get_bfcl_task(SEED).to_bfcl()) + "\n")
    before = out.read_bytes()
    res = CliRunner().invoke(synth_app, ["run", "--seed", SEED, "--n", "2", "--out", str(out)])
    assert res.exit_code == 1 and "nothing written" in res.output
    assert out.read_bytes() == before


def test_synth_run_refuses_an_out_whose_last_line_was_cut_off(tmp_path: Path) -> None:
    out = tmp_path / "v.jsonl"
    out.write_text(json.dumps(get_bfcl_task(SEED).to_bfcl()) + "\n" + '{"id": "multi_turn_base_x1", "quest')
    before = out.read_bytes()
    res = rods("synth", "run", "--seed", SEED, "--out", str(out), cwd=tmp_path)
    assert res.returncode == 2 and "incomplete line" in res.stderr and out.read_bytes() == before


def test_synth_validate_keeps_every_complete_line_of_a_cut_off_file(tmp_path: Path) -> None:
    good = json.dumps(get_bfcl_task(SEED).to_bfcl())
    cut = tmp_path / "cut.jsonl"
    cut.write_text(good + "\n" + good[:300])
    res = rods("synth", "validate", str(cut), "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["tasks"] == 1
    warnings = [x for x in res.stderr.splitlines() if x.startswith("warning:")]
    assert len(warnings) == 1 and f"{cut}:2" in warnings[0] and "error" not in res.stderr
    middle = tmp_path / "middle.jsonl"
    middle.write_text(good + "\n" + good[:300] + "\n" + good + "\n")
    res = rods("synth", "validate", str(middle), cwd=tmp_path)
    assert res.returncode == 2 and f"{middle}:2: not valid JSON" in res.stderr


def test_synth_run_ctrl_c_says_what_was_kept_and_how_to_continue(tmp_path: Path) -> None:
    out = tmp_path / "v.jsonl"
    proc = subprocess.Popen([*RODS, "synth", "run", "--seed", SEED, "--n", "500", "--out", str(out)],
                            cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 90
    while not (out.exists() and out.read_text().count("\n") >= 2):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    kept = out.read_text().count("\n")
    line = next(x for x in stderr.splitlines() if x.startswith("interrupted:"))
    assert f"kept {kept} variants in {out}" in line and "rods synth run --seed multi_turn_base_5" in line
    assert "--rng-seed" in line and "Traceback" not in stderr
    assert all(json.loads(x) for x in out.read_text().splitlines())  # whole lines only


def test_sft_has_its_own_default_and_never_trains_over_a_warm_start(tmp_path: Path) -> None:
    default = inspect.signature(cli_sft.sft).parameters["run_dir"].default
    assert getattr(default, "default", default) == Path("runs/sft")
    best = tmp_path / "runs" / "demo" / "sft" / "best"
    best.mkdir(parents=True)
    (best / "config.json").write_text("the demo's model\n")
    res = rods("sft", "--run-dir", "runs/demo", "--steps", "1", cwd=tmp_path)
    assert res.returncode == 2 and "already holds a warm start" in res.stderr and "--replace" in res.stderr
    assert (best / "config.json").read_text() == "the demo's model\n"


def test_eval_results_go_where_checkpoint_rotation_never_deletes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert default_eval_dir(run / "checkpoints" / "step_000010", "eval", "train") == run / "eval" / "step_000010-eval-train"
    assert default_eval_dir(run / "sft" / "best", "eval", "bfcl") == run / "sft" / "eval" / "best-eval-bfcl"
    assert default_eval_dir(tmp_path / "my-model", "train", "train") == tmp_path / "my-model" / "eval-train-train"
