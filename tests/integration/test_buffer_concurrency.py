"""Several processes admit, report, promote, sweep and sample one run at once (real Redis).

Each process admits its own variants plus variants every process also admits (the same content,
so the same id), reports group stats of the tasks it samples, and promotes and sweeps like a
trainer would. Afterwards: every admitted task exists exactly once, the counters equal a recount
of the records, the state sets agree with the records, the event log replays to the records, the
visits equal the reports that said `applied`, and P_max held throughout.

A child reports its result, or its traceback, on a queue: a failed assert in a child fails the
test at once with the child's own error (and a child that dies without a word fails it too).
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import time
import traceback
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from typing import Any

import numpy as np
import pytest

from rods.config import Settings
from rods.pool import PoolRules, Report
from rods.store.buffer import RedisBuffer
from rods.store.connection import connect
from rods.tasks import Task

pytestmark = pytest.mark.integration
RULES = PoolRules(beta=0.5, p_max=25, stale_steps=30, history_k=3, min_obs=2)
N_PROCS = 4
ROUNDS = 30
SHARED = 12  # variants 0..11 are admitted by every process


def worker(
    settings: Settings, w: int, make_variant: Callable[[int], Task], out: Queue[tuple[str, Any]]
) -> None:
    """The child: ("ok", result) or ("error", its traceback) on `out`."""
    try:
        out.put(("ok", work(settings, w, make_variant)))
    except BaseException:  # noqa: BLE001 - the parent fails the test with this text
        out.put(("error", f"worker {w} failed:\n{traceback.format_exc()}"))


def work(
    settings: Settings, w: int, make_variant: Callable[[int], Task]
) -> tuple[int, list[str], int, int, int]:
    buf = RedisBuffer(connect(settings), settings.run, RULES)
    rng = np.random.default_rng(w)
    admitted: list[str] = []
    applied = sampled = 0
    for i in range(ROUNDS):
        step = w * 10_000 + i  # disjoint steps: a (task, step) report is never a duplicate
        res = buf.add_staged(
            [make_variant(1000 * (w + 1) + i), make_variant(i % SHARED)],
            step=step,
            priority=rng.random(),
        )
        admitted += res.admitted
        ids = buf.sample_ids(8, rng=rng) if i % 2 else buf.sample_ids(8)
        sampled += len(ids)
        rewards = rng.choice([0.0, 0.1, 0.5, 0.9, 1.0], size=len(ids))
        rep = buf.report(
            [
                Report(task_id=t, reward_mean=float(m), reward_var=0.1)
                for t, m in zip(ids, rewards, strict=True)
            ],
            step,
        )
        applied += rep.applied
        if i % 5 == 4:
            buf.sweep(step)
            buf.promote(step)
        counts = buf.counts()
        assert counts.get("active/origin/synthetic", 0) <= RULES.p_max
    return w, admitted, applied, sampled, buf.conflicts


def collect(out: Queue[tuple[str, Any]], procs: list[BaseProcess], timeout_s: float) -> list[Any]:
    """One result per child; the first child error (or silent death) fails the test at once."""
    results: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while len(results) < len(procs):
        try:
            kind, value = out.get(timeout=0.5)
        except queue.Empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if dead:
                pytest.fail(f"a worker died without reporting (exit code {dead[0]})")
            if time.monotonic() > deadline:
                pytest.fail(f"{len(procs) - len(results)} workers did not report in {timeout_s} s")
            continue
        if kind == "error":
            pytest.fail(value, pytrace=False)
        results.append(value)
    return results


def test_processes_at_once_keep_the_buffer_consistent(
    settings: Settings,
    seeds: tuple[Task, ...],
    make_variant: Callable[[int], Task],
    check_buffer: Callable[[RedisBuffer, set[str]], None],
) -> None:
    buf = RedisBuffer(connect(settings), settings.run, RULES)
    buf.load_seeds(list(seeds))
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    procs = [
        ctx.Process(target=worker, args=(settings, w, make_variant, out)) for w in range(N_PROCS)
    ]
    for p in procs:
        p.start()
    try:
        results = collect(out, procs, timeout_s=60)
    except BaseException:  # pytest.fail: stop the other children before reporting
        for p in procs:
            p.terminate()
        raise
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    admitted = [t for _, ids, _, _, _ in results for t in ids]
    assert len(admitted) == len(set(admitted)), "a task was admitted twice"
    expected = {make_variant(1000 * (w + 1) + i).id for w in range(N_PROCS) for i in range(ROUNDS)}
    expected |= {make_variant(k).id for k in range(SHARED)}
    assert set(admitted) == expected
    records = buf.records()
    assert {r.task_id for r in records if r.origin == "synthetic"} == expected
    assert sum(r.visits for r in records) == sum(a for _, _, a, _, _ in results) > 0
    assert sum(s for _, _, _, s, _ in results) > 0
    events = buf.events()
    assert sum(len(e.records) for e in events if e.kind == "admit") == len(expected) + len(seeds)
    assert sum(len(e.task_ids) for e in events if e.kind == "report") == sum(
        a for _, _, a, _, _ in results
    )
    check_buffer(buf, expected | {t.id for t in seeds})
