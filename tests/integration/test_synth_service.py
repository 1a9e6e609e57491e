"""The synthesis service end to end: stream → dispatcher → real Celery worker → staged tasks.

A real `rods worker` process (Celery, prefork pool of 1) runs against the private Redis; the
dispatcher runs in the test process. Nothing is faked.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from rods.boundary import BoundaryRequest, request_id_for
from rods.env import GroundTruthCache
from rods.env.official import official_correct
from rods.env.reward import execute_ground_truth
from rods.env.world import World
from rods.store.buffer import RedisBuffer
from rods.store.stream import BoundaryStream
from rods.tasks import get_bfcl_task
from services.celery_app import make_app
from services.dispatcher import Dispatcher, latency_samples

pytestmark = pytest.mark.integration
SEEDS = ["multi_turn_base_0", "multi_turn_miss_func_2", "multi_turn_long_context_3"]


@pytest.fixture
def worker(redis_url):
    env = {**os.environ, "REDIS_URL": redis_url, "RODS_SYNTH_BACKEND": "procedural"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "worker", "--concurrency", "1", "--loglevel", "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _request(task_id: str, step: int = 1, n: int = 1) -> BoundaryRequest:
    return BoundaryRequest(
        request_id=request_id_for(task_id, step), task_id=task_id, category=task_id.rsplit("_", 1)[0][11:],
        policy_step=step, reward_mean=0.5, reward_var=0.2, group_size=8, n_variants=n,
    )


def _drive(dispatcher: Dispatcher, until, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not until():
        assert time.monotonic() < deadline, f"timed out: {dispatcher.stats}"
        dispatcher.poll_once(block_ms=200)


def test_requests_become_staged_executable_tasks(settings, redis_client, worker):
    seeds = [get_bfcl_task(t) for t in SEEDS]
    buffer = RedisBuffer(redis_client, settings.run)
    buffer.load_seeds(seeds)
    stream = BoundaryStream(redis_client, settings.run, settings)
    published = stream.publish([_request(t) for t in SEEDS])
    assert len(published) == 3
    d = Dispatcher(settings, settings.run, app=make_app(settings), max_in_flight=2)
    _drive(d, lambda: d.stats.done + d.stats.failed >= 3)
    assert d.stats.failed == 0, d.stats.errors
    assert stream.pending() == 0  # everything acknowledged after it was stored

    staged = buffer.export_tasks(["staged"])
    assert {t.rods.parent_id for t in staged} <= set(SEEDS) and len(staged) >= 2
    cache = GroundTruthCache()
    for task in staged:
        assert task.rods.origin == "synthetic" and task.rods.synthesizer == "procedural"
        assert task.category == task.rods.parent_id.rsplit("_", 1)[0][11:]
        calls = [list(t.calls) for t in execute_ground_truth(task, World.load(task)).turns]
        assert official_correct(task, calls), task.id  # bfcl-eval's own checker accepts it
        assert cache.runtime(task).ground_truth.problems == ()
    assert all(req in buffer_requests_done(buffer) for req in published)
    assert len(latency_samples(redis_client, settings.run)) == 3

    # the same requests again: the stream refuses duplicates, and a direct resend is a no-op
    assert stream.publish([_request(t) for t in SEEDS]) == []
    again = make_app(settings).send_task(
        "rods.synthesize", kwargs={"request": _request(SEEDS[0]).model_dump_json(), "run": settings.run},
        queue="rods.synth",
    ).get(timeout=60)
    assert again["status"] == "already_done"
    assert len(buffer.export_tasks(["staged"])) == len(staged)


def buffer_requests_done(buffer: RedisBuffer) -> set[str]:
    return {r for r in (request_id_for(t, 1) for t in SEEDS) if buffer.is_request_done(r)}


def test_a_request_that_always_fails_is_dead_lettered(settings, redis_client, worker):
    fast = settings.model_copy(
        update={"claim_idle_ms": 300, "max_deliveries": 2, "dispatch_retry_base_s": 0.3}
    )
    RedisBuffer(redis_client, fast.run).load_seeds([get_bfcl_task(SEEDS[0])])
    stream = BoundaryStream(redis_client, fast.run, fast)
    stream.publish([_request("multi_turn_base_7")])  # not in this run's buffer: the task fails
    d = Dispatcher(fast, fast.run, app=make_app(fast), max_in_flight=2)
    _drive(d, lambda: d.stats.dead >= 1, timeout_s=90)
    (dead,) = stream.dead_letters()
    assert "multi_turn_base_7" in dead.last_error and dead.deliveries == 2
    assert d.stats.failed == 2 and stream.pending() == 0
