"""The trainer end to end on CPU: static and rods modes, kill + resume, evaluation.

A small locally built policy (random weights, tokenizer trained on a few demo tasks) keeps these
fast; what is tested is the plumbing — buffer traffic, detector, checkpoints, metrics, the
official-checker evaluation — not learning (tests/unit/test_grpo.py and test_sft.py cover that).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rods.store.buffer import RedisBuffer
from rods.store.connection import connect
from rods.store.stream import BoundaryStream
from tests.unit.tiny_lm import small_policy
from trainer.config import load_config
from trainer.evaluate import evaluate
from trainer.loop import train
from trainer.rollout import Trajectory
from trainer.sources import BufferSource

pytestmark = pytest.mark.integration

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
lr = 1e-3
kl_coef = {kl}
micro_batch = 2
[loop]
mode = "{mode}"
steps = {steps}
checkpoint_every = 1
steps_per_epoch = {epoch}
"""


@pytest.fixture(scope="module")
def policy(tmp_path_factory) -> Path:
    return small_policy(tmp_path_factory.mktemp("policy") / "tiny")


def _config(tmp_path: Path, policy: Path, mode: str, steps: int, kl: float = 0.0, epoch: int = 2) -> Path:
    path = tmp_path / f"{mode}.toml"
    path.write_text(CONFIG.format(policy=policy, mode=mode, steps=steps, kl=kl, epoch=epoch))
    return path


def _steps(run_dir: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_static_run_killed_mid_way_resumes_and_continues_its_metrics(tmp_path, policy, settings):
    cfg = _config(tmp_path, policy, "static", steps=4, kl=0.01)
    run_dir = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "REDIS_URL": settings.redis_url, "RODS_RUN": settings.run}
    argv = [sys.executable, "-m", "cli", "train", "--config", str(cfg), "--run-dir", str(run_dir)]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    marker = run_dir / "checkpoints" / "latest"
    deadline = time.monotonic() + 240
    while not (marker.exists() and marker.read_text().strip() >= "step_000002"):
        assert proc.poll() is None, "the trainer exited before it was killed"
        assert time.monotonic() < deadline, "no second checkpoint in time"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = _steps(run_dir)[-1]
    assert killed_at < 4

    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "resumed from step" in done.stdout
    assert _steps(run_dir) == [1, 2, 3, 4]  # each step once, continued after the crash
    assert (run_dir / "report.html").exists()
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("step_*")) == ["step_000003", "step_000004"]


def test_rods_mode_against_real_redis(tmp_path, policy, settings):
    cfg = load_config(_config(tmp_path, policy, "rods", steps=3))
    result = train(cfg, tmp_path / "rods-run", settings=settings)
    metrics = [json.loads(line) for line in (tmp_path / "rods-run" / "metrics.jsonl").open()]
    assert [m["step"] for m in metrics] == [1, 2, 3] and result.steps_done == 3
    last = metrics[-1]
    assert last["buffer/active"] == 27.0  # the demo seeds, loaded into the run's buffer
    assert "time/detector" in last and "boundary/frac_hard" in last
    r = connect(settings)
    buffer = RedisBuffer(r, settings.run)
    visited = [rec for rec in buffer.records(["active"]) if rec.visits > 0]
    assert len(visited) >= 2  # the trainer reported its groups' stats
    kinds = {e.kind for e in buffer.events()}
    assert {"admit", "report"} <= kinds, kinds
    r.close()


def _traj(task_id: str, reward: float) -> Trajectory:
    from rods.env.reward import Score

    return Trajectory(task_id=task_id, token_ids=[1, 2], loss_mask=[0, 1], logprobs=[0.0, -1.0],
                      reward=reward, correct=reward == 1.0,
                      score=Score(task_id, [reward == 1.0], reward, reward == 1.0), stop_reason="completed",
                      n_generated=1)


def test_detector_publishes_boundary_groups_once_with_cooldown(settings, redis_client, seeds):
    from rods.boundary import BoundaryRequest, DetectorRules
    from rods.store.keys import REQUEST_FIELD

    buffer = RedisBuffer(redis_client, settings.run)
    buffer.load_seeds(list(seeds[:6]))
    stream = BoundaryStream(redis_client, settings.run, settings)
    source = BufferSource(buffer, stream, 6, 0, DetectorRules(budget=2, category_quota=2, cooldown_steps=10))
    groups = [[_traj(t.id, r) for r in rewards] for t, rewards in zip(
        seeds[:6], [(0, 0), (1, 1), (0, 1), (0.5, 0.5), (0.25, 0.75), (0, 0.5)], strict=True)]
    m = source.after_step(0, groups)
    assert m["boundary/requests"] == 2.0 and stream.length() == 2
    assert m["boundary/frac_boundary"] == pytest.approx(4 / 6)
    assert m["boundary/zero_var_in_band"] == 1.0  # (0.5, 0.5): in the band, no spread
    # the same groups at the next step: the published tasks are cooling down
    m = source.after_step(1, groups)
    assert stream.length() == 3 and m["boundary/requests"] == 1.0
    published = {BoundaryRequest.model_validate_json(f[REQUEST_FIELD]).task_id
                 for _, f in redis_client.xrange(stream.keys.boundary)}
    # the three boundary groups with spread; never the flat (0.5, 0.5) one, nor hard or mastered
    assert published == {seeds[2].id, seeds[4].id, seeds[5].id}
    recs = {r.task_id: r for r in buffer.records(["active"])}
    assert recs[seeds[2].id].visits == 2 and math.isclose(recs[seeds[2].id].last_mean, 0.5)


def test_eval_writes_the_paper_shaped_table(tmp_path, policy):
    report = evaluate(str(policy), tmp_path / "eval", split="eval", limit=1,
                      rollout_overrides={"max_new_tokens": 8, "max_total_tokens": 200, "compact_tools": True})
    table = json.loads((tmp_path / "eval" / "eval.json").read_text())["table"]
    assert set(table) == {"overall", "base", "miss_func", "miss_param", "long_context"}
    assert all(table[c]["n"] == 1 for c in ("base", "miss_func", "miss_param", "long_context"))
    assert report.disagreements == 0
    md = (tmp_path / "eval" / "eval.md").read_text()
    assert "| official accuracy (%) |" in md and "long_context" in md
    assert json.loads((tmp_path / "eval" / "eval.json").read_text())["protocol"] == "train"


def _epoch_ends(run_dir: Path) -> list[int]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [m["step"] for m in rows if m.get("loop/epoch_end")]


def test_resumed_rods_run_ends_its_epochs_where_an_uninterrupted_one_does(tmp_path, policy, settings):
    """The epoch position is in the checkpoint: resuming after step 4 of 3-step epochs continues
    the epoch that began at step 3 (it ends after step 6), instead of restarting it at 0 (which
    ended it after step 5)."""
    whole = tmp_path / "whole"
    train(load_config(_config(tmp_path, policy, "rods", steps=6, epoch=3)), whole,
          settings=settings.model_copy(update={"run": settings.run + "-whole"}))
    cut = tmp_path / "cut"
    cut_settings = settings.model_copy(update={"run": settings.run + "-cut"})
    train(load_config(_config(tmp_path, policy, "rods", steps=4, epoch=3)), cut, settings=cut_settings)
    assert _epoch_ends(cut) == [3]
    result = train(load_config(_config(tmp_path, policy, "rods", steps=6, epoch=3)), cut, settings=cut_settings)
    assert result.resumed_from == 4
    assert _epoch_ends(whole) == _epoch_ends(cut) == [3, 6]
    assert _steps(cut) == [1, 2, 3, 4, 5, 6]


def test_arms_draw_the_same_batches_and_differ_only_in_what_they_publish(settings, redis_client, seeds):
    from rods.boundary import BoundaryRequest, DetectorRules, group_stats, select_requests
    from rods.store.keys import REQUEST_FIELD

    rules = DetectorRules(budget=3, category_quota=3, cooldown_steps=0)
    sources = {}
    for publish in ("boundary", "uniform", "none"):
        run = f"{settings.run}-{publish}"
        buffer = RedisBuffer(redis_client, run)
        buffer.load_seeds(list(seeds[:10]))
        sources[publish] = BufferSource(buffer, BoundaryStream(redis_client, run, settings), 4, 7,
                                        rules, 0, None, publish)
    for step in range(6):
        batches = {k: [t.id for t in s.sample(step)] for k, s in sources.items()}
        assert batches["boundary"] == batches["uniform"] == batches["none"], step
    assert len({s._epoch_len for s in sources.values()}) == 1
    rewards = [(0, 0), (1, 1), (0, 1), (0.5, 0.5), (0.25, 0.75), (0, 0.5), (0, 0), (0, 0), (0, 0), (0, 0)]
    groups = [[_traj(t.id, r) for r in rs] for t, rs in zip(seeds[:10], rewards, strict=True)]
    expected = len(select_requests([group_stats(g[0].task_id, [t.reward for t in g]) for g in groups], 0, {}, rules))
    assert expected == 3
    published = {k: s.after_step(0, groups)["boundary/requests"] for k, s in sources.items()}
    assert published == {"boundary": 3.0, "uniform": 3.0, "none": 0.0}
    assert sources["none"].stream.length() == 0
    for k in ("boundary", "uniform", "none"):  # every arm reports its groups to its buffer
        assert sum(r.visits for r in sources[k].buffer.records(["active"])) == 10
    # the uniform arm's draw is not the detector's: over a few steps it requests non-boundary tasks
    for step in range(1, 8):
        sources["uniform"].after_step(step, groups)
    requested = {BoundaryRequest.model_validate_json(f[REQUEST_FIELD]).task_id
                 for _, f in redis_client.xrange(sources["uniform"].stream.keys.boundary)}
    hard_or_flat = {seeds[i].id for i in (0, 1, 3, 6, 7, 8, 9)}
    assert requested & hard_or_flat



def test_eval_under_the_bfcl_protocol_records_it(tmp_path, policy, monkeypatch):
    import trainer.evaluate as ev

    monkeypatch.setattr(ev, "context_length", lambda model, tok: 240)  # a short full context
    evaluate(str(policy), tmp_path / "bfcl", split="eval", limit=1, protocol="bfcl",
             rollout_overrides={"max_new_tokens": 8, "max_total_tokens": 200, "compact_tools": True})
    out = json.loads((tmp_path / "bfcl" / "eval.json").read_text())
    assert out["protocol"] == "bfcl"
    r = out["rollout"]
    assert (r["protocol"], r["max_steps_per_turn"], r["max_total_tokens"], r["max_new_tokens"]) == (
        "bfcl", 21, 240, 240)
    assert r["max_calls_per_message"] > 3 and r["greedy"] and not r["env_hints"]
    assert "Inference protocol: `bfcl`" in (tmp_path / "bfcl" / "eval.md").read_text()
