"""Issue #25, part A, against a private Redis: run directories with one owner, resumes that keep
the record of how earlier steps were trained, eval results that outlive checkpoint rotation,
exports that a typo cannot empty, imports that keep every complete line. The `rods` command runs
in a subprocess as a user runs it; the trainer uses a small locally built policy (CPU, seconds).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from rods.rundir import RunLock
from rods.tasks import get_bfcl_task, split_ids
from tests.unit.tiny_lm import small_policy
from trainer.config import load_config
from trainer.loop import train

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

CONFIG = """
[policy]
init_from = "{policy}"
device = "cpu"
[tasks]
subset = "demo"
[rollout]
group_size = 2
tasks_per_step = 2
max_new_tokens = 8
max_total_tokens = 200
compact_tools = true
[optim]
lr = {lr}
micro_batch = 2
[loop]
mode = "static"
steps = {steps}
checkpoint_every = 1
keep_checkpoints = 1
steps_per_epoch = 2
"""


@pytest.fixture(scope="module")
def policy(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    return small_policy(tmp_path_factory.mktemp("policy") / "tiny")


def _config(tmp_path: Path, policy: Path, steps: int, lr: str = "0.001") -> Path:
    path = tmp_path / f"train-{steps}-{lr}.toml"
    path.write_text(CONFIG.format(policy=policy, steps=steps, lr=lr))
    return path


def _env(settings) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "REDIS_URL": settings.redis_url, "RODS_RUN": settings.run}  # fmt: skip


def rods(settings, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return subprocess.run([sys.executable, "-m", "cli", *args], env=_env(settings), capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)  # fmt: skip


def _steps(run_dir: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_second_trainer_on_a_run_directory_stops_at_once_naming_the_holder(tmp_path, policy, settings):  # type: ignore[no-untyped-def]
    run_dir = tmp_path / "run"
    with RunLock(run_dir, "rods train --run-dir run (the first one)"):
        t0 = time.monotonic()
        res = rods(settings, "train", "--config", str(_config(tmp_path, policy, 2)), "--run-dir", str(run_dir))
        assert res.returncode == 2, res.stdout + res.stderr
        assert f"pid {os.getpid()}" in res.stderr and "(the first one)" in res.stderr
        assert "Traceback" not in res.stderr and time.monotonic() - t0 < 60
    assert not (run_dir / "metrics.jsonl").exists() and not (run_dir / "checkpoints").exists()


@pytest.mark.slow  # 30-70 s on 2 shared cores: real training steps in subprocesses
def test_resume_with_another_config_is_refused_named_then_kept_when_allowed(tmp_path, policy, settings):  # type: ignore[no-untyped-def]
    run_dir = tmp_path / "run"
    train(load_config(_config(tmp_path, policy, 1)), run_dir, settings=settings)
    recorded = (run_dir / "config.json").read_text()

    res = rods(settings, "train", "--config", str(_config(tmp_path, policy, 2, lr="0.0005")), "--run-dir", str(run_dir))
    assert res.returncode == 2 and "optim.lr: 0.001 -> 0.0005" in res.stderr and "--allow-config-change" in res.stderr
    assert (run_dir / "config.json").read_text() == recorded and _steps(run_dir) == [1]

    res = rods(settings, "train", "--config", str(_config(tmp_path, policy, 1)), "--run-dir", str(run_dir))
    assert res.returncode == 0, res.stderr
    assert "already at step 1; nothing to do (raise --steps to continue)" in " ".join(res.stdout.split())
    assert "done:" not in res.stdout and _steps(run_dir) == [1]

    res = rods(settings, "train", "--config", str(_config(tmp_path, policy, 2, lr="0.0005")), "--run-dir", str(run_dir),
               "--allow-config-change")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert (run_dir / "configs" / "until_step_000001.json").read_text() == recorded
    assert json.loads((run_dir / "config.json").read_text())["optim"]["lr"] == 0.0005
    assert _steps(run_dir) == [1, 2]


@pytest.mark.slow  # 30-70 s on 2 shared cores: real training steps in subprocesses
def test_eval_results_survive_the_rotation_of_the_checkpoint_they_evaluated(tmp_path, policy, settings):  # type: ignore[no-untyped-def]
    run_dir = tmp_path / "run"
    train(load_config(_config(tmp_path, policy, 1)), run_dir, settings=settings)
    ckpt = run_dir / "checkpoints" / "step_000001"
    res = CliRunner().invoke(app, ["eval", "--checkpoint", str(ckpt), "--limit", "1",
                                   "--config", str(_config(tmp_path, policy, 1))])  # fmt: skip
    assert res.exit_code == 0, res.output
    results = run_dir / "eval" / "step_000001-eval-train" / "eval.json"
    assert results.exists() and not list(ckpt.glob("eval*"))
    train(load_config(_config(tmp_path, policy, 2)), run_dir, settings=settings)  # rotation: keep 1
    assert not ckpt.exists() and json.loads(results.read_text())["split"] == "eval"


@pytest.mark.slow  # 30-70 s on 2 shared cores: real training steps in subprocesses
def test_train_ctrl_c_names_the_checkpoint_kept_and_the_resume_command(tmp_path, policy, settings):  # type: ignore[no-untyped-def]
    run_dir = tmp_path / "run"
    cfg = _config(tmp_path, policy, 50)
    proc = subprocess.Popen([sys.executable, "-m", "cli", "train", "--config", str(cfg), "--run-dir", str(run_dir)],
                            env=_env(settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)  # fmt: skip
    deadline = time.monotonic() + 240
    while not (run_dir / "checkpoints" / "latest").exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    line = next(x for x in stderr.splitlines() if x.startswith("interrupted:"))
    latest = (run_dir / "checkpoints" / "latest").read_text().strip()
    assert f"checkpoint at step {int(latest.split('_')[1])} kept in {run_dir / 'checkpoints' / latest}" in line
    assert f"resume with: rods train --run-dir {run_dir} --config {cfg}" in line and "Traceback" not in stderr


def test_export_and_stats_of_a_run_that_does_not_exist(tmp_path, settings):  # type: ignore[no-untyped-def]
    where = ["--redis-url", settings.redis_url]
    assert rods(settings, "buffer", "init", *where, "--run", settings.run).returncode == 0
    good = tmp_path / "export.jsonl"
    assert rods(settings, "buffer", "export", str(good), *where, "--run", settings.run).returncode == 0
    before = good.read_bytes()
    typo = settings.run + "x"
    res = rods(settings, "buffer", "export", str(good), *where, "--run", typo)
    assert res.returncode == 2 and f"no run named {typo!r}" in res.stderr and settings.run in res.stderr
    assert good.read_bytes() == before and len(res.stderr.strip().splitlines()) == 1
    res = rods(settings, "buffer", "stats", *where, "--run", typo)
    assert res.returncode == 2 and f"no run named {typo!r}" in res.stderr and "active" not in res.stdout


def test_import_keeps_every_complete_line_of_a_cut_off_file(tmp_path, settings):  # type: ignore[no-untyped-def]
    seeds = sorted(split_ids("train"))[:3]
    lines = [json.dumps(get_bfcl_task(t).to_bfcl()) for t in seeds]
    cut = tmp_path / "cut.jsonl"
    cut.write_text(lines[0] + "\n" + lines[1] + "\n" + lines[2][:200])
    res = rods(settings, "buffer", "import", str(cut), "--redis-url", settings.redis_url, "--run", settings.run)
    assert res.returncode == 0, res.stderr
    assert "imported 2" in res.stdout
    warnings = [x for x in res.stderr.splitlines() if x.startswith("warning:")]
    assert len(warnings) == 1 and f"{cut}:3" in warnings[0]
