"""Faults on the data plane (real Redis): dead consumers, a Redis restart, poison requests.

- A consumer killed mid-work (before or after storing its output, never acknowledging) → another
  consumer reclaims the request after the idle timeout and the buffer ends up holding its output
  exactly once, with nothing left pending.
- Redis restarted with append-only persistence → buffer, stream and consumer-group contents are
  intact and the same clients carry on (they reconnect with backoff).
- A request whose processing always fails → in the dead-letter stream after N deliveries, with
  its last error, after exactly N attempts.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import threading
import time

import pytest

from rods.boundary import BoundaryRequest, group_stats, request_id_for, select_requests
from rods.config import Settings
from rods.pool import PoolRules, Report
from rods.store.buffer import RedisBuffer
from rods.store.connection import RedisUnavailable, connect
from rods.store.stream import BoundaryStream

pytestmark = pytest.mark.integration
FAST = {"claim_idle_ms": 150, "max_deliveries": 3}


def requests_for(seeds, step: int = 5) -> list[BoundaryRequest]:  # type: ignore[no-untyped-def]
    stats_B = [group_stats(t.id, [1.0, 0.0, 1.0, 0.0]) for t in seeds[:4]]
    return select_requests(stats_B, step, {})


def synthesize(make_variant, buf: RedisBuffer, q: BoundaryRequest) -> None:  # type: ignore[no-untyped-def]
    """A stand-in synthesizer whose output differs on every run (like an LLM at temperature 1)."""
    k = int(q.task_id.rsplit("_", 1)[1])
    task = make_variant(k, salt=f"{q.request_id} {random.random()}")
    buf.add_staged([task], step=q.policy_step, priority=q.score, request_id=q.request_id)


def victim(settings: Settings, make_variant, when: str, ready) -> None:  # type: ignore[no-untyped-def]
    r = connect(settings)
    stream, buf = BoundaryStream(r, settings.run, settings), RedisBuffer(r, settings.run)
    batch = stream.read("victim", count=1)
    assert len(batch.deliveries) == 1
    if when == "after_store":
        synthesize(make_variant, buf, batch.deliveries[0].request)
    ready.set()
    time.sleep(60)  # killed here: never acknowledges


@pytest.mark.parametrize("when", ["before_store", "after_store"])
def test_killed_consumer_is_reclaimed_and_processed_once(
    settings, seeds, make_variant, when
) -> None:  # type: ignore[no-untyped-def]
    settings = settings.model_copy(update=FAST)
    r = connect(settings)
    stream, buf = BoundaryStream(r, settings.run, settings), RedisBuffer(r, settings.run)
    stream.ensure_group()
    reqs = requests_for(seeds)
    assert len(stream.publish(reqs)) == 4
    # a fresh interpreter: a forked child of a process that ran Celery and dispatcher threads in
    # earlier tests can deadlock on a lock one of those threads held at the fork
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=victim, args=(settings, make_variant, when, ready))
    proc.start()
    assert ready.wait(30)
    os.kill(proc.pid, signal.SIGKILL)  # type: ignore[arg-type]
    proc.join()
    handled: list[str] = []

    def handler(q: BoundaryRequest) -> None:
        handled.append(q.request_id)
        synthesize(make_variant, buf, q)

    deadline = time.monotonic() + 10
    while (stream.pending() or len(set(handled)) < 3) and time.monotonic() < deadline:
        stream.process("rescuer", handler, count=8, block_ms=50)
    assert stream.pending() == 0
    assert sorted(handled) == sorted(q.request_id for q in reqs)  # each handled once here
    assert all(buf.is_request_done(q.request_id) for q in reqs)
    staged = buf.records(["staged"])
    assert sorted(r.task_id.split("_x")[0] for r in staged) == sorted(
        f"multi_turn_{q.category}" for q in reqs
    )
    assert len(staged) == 4  # exactly one output per request, although the victim's was re-run
    assert stream.dead_letters() == []


def test_always_failing_request_is_dead_lettered_after_n_tries(settings, seeds) -> None:  # type: ignore[no-untyped-def]
    settings = settings.model_copy(update=FAST)
    stream = BoundaryStream(connect(settings), settings.run, settings)
    stream.ensure_group()
    reqs = requests_for(seeds)
    stream.publish(reqs)
    poison = reqs[1].request_id
    attempts: dict[str, int] = {}

    def handler(q: BoundaryRequest) -> None:
        attempts[q.request_id] = attempts.get(q.request_id, 0) + 1
        if q.request_id == poison:
            raise RuntimeError(f"synthesis failed on attempt {attempts[q.request_id]}")

    deadline = time.monotonic() + 10
    while not stream.dead_letters() and time.monotonic() < deadline:
        stream.process(f"c{random.randint(0, 1)}", handler, count=8, block_ms=50)
    [dead] = stream.dead_letters()
    assert attempts[poison] == settings.max_deliveries == 3
    assert BoundaryRequest.model_validate_json(dead.request).request_id == poison
    assert dead.deliveries == 3 and dead.last_error == "RuntimeError: synthesis failed on attempt 3"
    assert all(attempts[q.request_id] == 1 for q in reqs if q.request_id != poison)
    assert stream.pending() == 0


def test_duplicate_publish_is_harmless_and_sets_cooldown(settings, seeds) -> None:  # type: ignore[no-untyped-def]
    stream = BoundaryStream(connect(settings), settings.run, settings)
    reqs = requests_for(seeds)
    assert stream.publish(reqs) == [q.request_id for q in reqs]
    assert stream.publish(reqs + reqs) == []
    assert stream.length() == 4
    assert stream.last_requested([seeds[0].id, "multi_turn_base_x0"]) == {seeds[0].id: 5}
    # The next step's selection skips what is cooling down (default cooldown 10 steps).
    stats_B = [group_stats(t.id, [1.0, 0.0]) for t in seeds[:6]]
    later = select_requests(stats_B, 9, stream.last_requested([s.task_id for s in stats_B]))
    assert {q.task_id for q in later} == {t.id for t in seeds[4:6]}
    assert sorted(stream.publish(later)) == sorted(request_id_for(t.id, 9) for t in seeds[4:6])


def test_restart_with_appendonly_keeps_everything(aof_server, seeds, make_variant) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(
        redis_url=aof_server.url, run="restart", connect_retries=10, claim_idle_ms=0
    )
    r = connect(settings)
    buf = RedisBuffer(r, "restart", PoolRules(beta=0.5))
    stream = BoundaryStream(r, "restart", settings)
    buf.load_seeds(list(seeds))
    buf.add_staged([make_variant(k) for k in range(4)], step=1, request_id="q@1")
    buf.promote(2)
    buf.report([Report(task_id=t.id, reward_mean=0.5, reward_var=0.25) for t in seeds[:5]], step=3)
    stream.ensure_group()
    stream.publish(requests_for(seeds))
    held = stream.read("c1", count=2).deliveries
    before = ([t.to_bfcl() for t in buf.export_tasks()], buf.counts(), buf.events())

    aof_server.restart()  # same port and directory; data comes back from the append-only file

    after = ([t.to_bfcl() for t in buf.export_tasks()], buf.counts(), buf.events())
    assert after == before
    assert buf.is_request_done("q@1") and stream.length() == 4 and stream.pending() == 2
    assert stream.publish(requests_for(seeds)) == []  # dedup markers survived
    reclaimed = stream.read("c2", count=8)
    assert [d.entry_id for d in reclaimed.deliveries[:2]] == [d.entry_id for d in held]
    assert (
        buf.report([Report(task_id=seeds[0].id, reward_mean=0.7, reward_var=0.1)], step=4).applied
        == 1
    )


def test_clients_ride_out_a_restart(aof_server, seeds) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(
        redis_url=aof_server.url, run="outage", connect_retries=10, backoff_cap_s=0.5
    )
    buf = RedisBuffer(connect(settings), "outage")
    buf.load_seeds(list(seeds))

    down = threading.Event()

    def bounce() -> None:
        aof_server.stop()
        down.set()
        time.sleep(0.5)
        aof_server.start()

    t = threading.Thread(target=bounce)
    t.start()
    assert down.wait(10)  # the server is down now: the report retries with backoff until it is back
    res = buf.report([Report(task_id=seeds[0].id, reward_mean=0.5, reward_var=0.25)], step=1)
    t.join()
    assert res.applied == 1 and buf.get_record(seeds[0].id).visits == 1  # type: ignore[union-attr]


def test_unreachable_redis_has_a_clear_message() -> None:
    from rods.store.server import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(
        RedisUnavailable,
        match=r"cannot reach Redis at redis://127\.0\.0\.1:\d+/0.*redis-server --port 6379.*REDIS_URL",
    ):
        connect(Settings(redis_url=url, connect_retries=2, backoff_base_s=0.01))


def test_cooldown_is_enforced_by_the_server_across_trainers(settings, seeds) -> None:  # type: ignore[no-untyped-def]
    r = connect(settings)
    a, b = BoundaryStream(r, settings.run, settings), BoundaryStream(r, settings.run, settings)
    stats_B = [group_stats(t.id, [1.0, 0.0]) for t in seeds[:2]]
    assert b.last_requested([s.task_id for s in stats_B]) == {}  # b now believes: never requested
    assert len(a.publish(select_requests(stats_B, 5, {}))) == 2
    stale_view = b.last_requested([s.task_id for s in stats_B])
    assert stale_view == {}  # b's cached view is stale…
    assert b.publish(select_requests(stats_B, 8, stale_view)) == []  # …the server still says no
    assert b.last_requested([seeds[0].id], fresh=True) == {seeds[0].id: 5}
    assert len(b.publish(select_requests(stats_B, 15, {}))) == 2  # 10 steps later: due again


def test_redeliver_counts_and_dead_letters_at_the_limit(settings, seeds) -> None:  # type: ignore[no-untyped-def]
    """The dispatcher's own retries: XCLAIM counts each, delivery N+1 is a dead letter."""
    settings = settings.model_copy(update={"max_deliveries": 2, "claim_idle_ms": 100})
    stream = BoundaryStream(connect(settings), settings.run, settings)
    stream.ensure_group()
    stream.publish(requests_for(seeds)[:1])
    (d1,) = stream.read("me", count=4).deliveries
    stream.fail(d1, "RuntimeError: first")
    (d2,) = stream.redeliver("me", d1).deliveries
    assert (d1.deliveries, d2.deliveries) == (1, 2) and d2.request == d1.request
    time.sleep(0.2)
    stream.keep("me", [d2.entry_id])  # still ours: the idle time starts again
    assert stream.read("other", count=4).deliveries == []
    stream.fail(d2, "RuntimeError: second")
    gone = stream.redeliver("me", d2)
    assert gone.deliveries == [] and gone.dead == [d2.entry_id]
    (dead,) = stream.dead_letters()
    assert dead.deliveries == 2 and dead.last_error == "RuntimeError: second"
    assert dead.fields == {"request": d1.request.model_dump_json()} and stream.pending() == 0


def test_dead_letter_now_keeps_the_request_and_error(settings, seeds) -> None:  # type: ignore[no-untyped-def]
    stream = BoundaryStream(connect(settings), settings.run, settings)
    stream.ensure_group()
    stream.publish(requests_for(seeds)[:2])
    first, second = stream.read("me", count=4).deliveries
    stream.dead_letter(first, "me", "BackendMisconfigured: model not found: openai/x")
    (dead,) = stream.dead_letters()
    assert dead.entry_id == first.entry_id and dead.deliveries == 1
    assert BoundaryRequest.model_validate_json(dead.request) == first.request
    assert dead.last_error.startswith("BackendMisconfigured: model not found")
    assert stream.pending() == 1  # the other one is untouched
