"""The in-memory replay buffer: lifecycle invariants under random operation sequences and threads.

The full contract suite (shared with Redis) is tests/integration/test_buffer_contract.py; these
tests need no service and check the invariants every store must keep after any sequence of
operations: counters equal a recount of the records, state sets agree with the records, the event
log replays to the records, no admitted task is lost, and P_max holds.
"""

from __future__ import annotations

import math
import threading
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rods.pool import STATES, PoolRules, Report, count_records
from rods.store.contract import ReplayBuffer
from rods.store.events import count_history, replay_records, replay_states
from rods.store.memory import MemoryBuffer
from rods.tasks import RodsMeta, Task, load_split, synthetic_id

RULES = PoolRules(beta=0.5, p_max=6, stale_steps=6, history_k=3, min_obs=2)


@cache
def seeds() -> tuple[Task, ...]:
    return tuple(load_split("train")[:12])


def variant(k: int) -> Task:
    """A synthetic child of a seed; the same k always gives the same content (and id)."""
    seed = seeds()[k % len(seeds())]
    body = seed.to_bfcl() | {
        "question": [[{"role": "user", "content": f"variant {k}"}]] * len(seed.question)
    }
    return Task.model_validate(
        body
        | {
            "id": synthetic_id(seed.category, body),
            "rods": RodsMeta(origin="synthetic", parent_id=seed.id, root_id=seed.id, generation=1),
        }
    )


def check_invariants(buf: ReplayBuffer, admitted: set[str]) -> None:
    records = buf.records()
    by_id = {r.task_id: r for r in records}
    assert len(by_id) == len(records), "a task is in two state sets"
    assert buf.counts() == count_records(records, buf.rules)
    for state in STATES:
        assert {r.task_id for r in buf.records([state])} == {
            r.task_id for r in records if r.state == state
        }
    assert admitted <= set(by_id), f"lost tasks: {sorted(admitted - set(by_id))[:3]}"
    assert replay_records(buf.events()) == by_id
    assert len(buf.get_tasks(list(by_id))) == len(by_id)
    n_syn = sum(1 for r in records if r.state == "active" and r.origin == "synthetic")
    assert n_syn <= buf.rules.p_max


op = st.one_of(
    st.tuples(
        st.just("admit"), st.lists(st.integers(0, 30), max_size=4), st.none() | st.integers(0, 5)
    ),
    st.tuples(st.just("promote")),
    st.tuples(st.just("sweep")),
    st.tuples(
        st.just("report"),
        st.lists(
            st.tuples(st.integers(0, 40), st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0, math.nan])),
            max_size=8,
        ),
    ),
    st.tuples(st.just("retire"), st.integers(0, 40)),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(op, max_size=25))
def test_random_operation_sequences_keep_invariants(ops: list[tuple]) -> None:
    buf = MemoryBuffer("prop", RULES)
    admitted = set(buf.load_seeds(list(seeds()[:4])).admitted)
    known: list[str] = sorted(admitted)
    for step, (name, *args) in enumerate(ops, start=1):
        if name == "admit":
            ks, rid = args
            res = buf.add_staged(
                [variant(k) for k in ks],
                step,
                priority=0.5,
                request_id=None if rid is None else f"r{rid}",
            )
            admitted |= set(res.admitted)
            known += res.admitted
        elif name == "promote":
            buf.promote(step)
        elif name == "sweep":
            buf.sweep(step)
        elif name == "report" and known:
            reports = [
                Report(task_id=known[i % len(known)], reward_mean=m, reward_var=0.1)
                for i, m in args[0]
            ]
            res = buf.report(reports, step)
            assert all(buf.get_record(t).state == "retired" for t, _ in res.retired)  # type: ignore[union-attr]
        elif name == "retire" and known:
            buf.retire([known[args[0] % len(known)]], step)
        check_invariants(buf, admitted)


def test_lifecycle_story() -> None:
    buf = MemoryBuffer("story", RULES)
    assert len(buf.load_seeds(list(seeds())).admitted) == 12
    kids = [variant(k) for k in range(8)]
    assert buf.add_staged(kids, step=1, priority=0.3).admitted == [t.id for t in kids]
    assert buf.add_staged([kids[0]], step=2).duplicates == [kids[0].id]
    assert buf.promote(step=2) == [t.id for t in kids[:6]]  # β·12 = 6 ≤ P_max 6
    assert buf.promote(step=3) == []  # P_max reached
    res = buf.report([Report(task_id=kids[0].id, reward_mean=0.1, reward_var=0.0)], step=4)
    assert res.retired == [(kids[0].id, "trial")]
    assert buf.promote(step=5) == [kids[6].id]
    assert replay_states(buf.events())[kids[0].id] == ["staged", "active", "retired"]
    history = list(count_history(buf.events(), buf.rules))
    assert [e.kind for e, _ in history] == ["admit", "admit", "promote", "report", "promote"]
    assert [c.get("active", 0) for _, c in history] == [12, 12, 18, 17, 18]
    assert history[-1][1] == buf.counts()
    snap = buf.snapshot()
    assert snap["active"]["total"] == 18 and snap["active"]["origin"] == {
        "seed": 12,
        "synthetic": 6,
    }
    assert snap["retired"]["reason"] == {"trial": 1} and snap["staged"]["total"] == 1
    retired = dict(buf.sweep(step=20))  # nothing observed since promotion: stale (seeds stay)
    assert set(retired.values()) == {"stale"} and all(t.startswith("multi_turn") for t in retired)
    assert {r.origin for r in buf.records(["active"])} == {"seed"}
    check_invariants(buf, {t.id for t in seeds()} | {t.id for t in kids})


def test_refuses_eval_tasks_and_wrong_origins() -> None:
    from rods.tasks import load_split as ls

    buf = MemoryBuffer("refuse")
    held_out = ls("eval")[0]
    assert held_out.id in buf.load_seeds([held_out]).rejected
    assert seeds()[0].id in buf.add_staged([seeds()[0]]).rejected
    assert variant(1).id in buf.load_seeds([variant(1)]).rejected
    assert buf.counts() == {}


def test_sampling_is_reproducible_and_weighted() -> None:
    buf = MemoryBuffer("sample", RULES)
    buf.load_seeds(list(seeds()))
    assert buf.sample_ids(5, rng=7) == buf.sample_ids(5, rng=7)
    assert len(set(buf.sample_ids(50))) == 12
    ids = sorted(t.id for t in seeds())
    # All but one task mastered-looking (weight floor 0.05): P(the other) = 1 / (1 + 11 * 0.05).
    buf.report([Report(task_id=t, reward_mean=1.0, reward_var=0.0) for t in ids[1:]], step=1)
    picks = [buf.sample_ids(1, rng=i, mode="boundary")[0] for i in range(400)]
    assert 0.55 < picks.count(ids[0]) / 400 < 0.74  # expected 0.645, sd 0.024
    uniform = [buf.sample_ids(1, rng=i, mode="uniform")[0] for i in range(400)]
    assert uniform.count(ids[0]) / 400 < 0.2  # expected 1/12
    assert [t.id for t in buf.sample(3, rng=1)] == buf.sample_ids(3, rng=1)


def test_threads_admitting_and_reporting_at_once() -> None:
    buf = MemoryBuffer("threads", PoolRules(p_max=1000, beta=1.0))
    buf.load_seeds(list(seeds()))
    applied: list[int] = []

    def worker(w: int) -> None:
        for i in range(30):
            buf.add_staged(
                [variant(100 + w * 1000 + i), variant(i)], step=i
            )  # variant(i) is shared
            res = buf.report(
                [Report(task_id=seeds()[i % 12].id, reward_mean=0.5, reward_var=0.1)],
                step=w * 1000 + i,
            )
            applied.append(res.applied)
            if i % 10 == 9:
                buf.promote(step=i)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = buf.records()
    assert len([r for r in records if r.origin == "synthetic"]) == 4 * 30 + 30
    assert sum(r.visits for r in records) == sum(applied) == 120
    check_invariants(buf, {r.task_id for r in records})


@pytest.mark.parametrize("states", [list(STATES), ["staged"], ["active", "retired"]])
def test_export_import_round_trip(states: list) -> None:
    buf = MemoryBuffer("export", RULES)
    buf.load_seeds(list(seeds()))
    buf.add_staged([variant(k) for k in range(5)], step=1, priority=0.7)
    buf.promote(2)
    buf.report([Report(task_id=variant(0).id, reward_mean=0.1, reward_var=0.0)], step=3)
    first = buf.export_tasks(states)
    other = MemoryBuffer("export2", RULES)
    assert len(other.import_tasks(first).admitted) == len(first)
    assert [t.to_bfcl() for t in other.export_tasks(states)] == [t.to_bfcl() for t in first]
    assert other.records(states) == buf.records(states)
    assert other.import_tasks(first).duplicates == [t.id for t in first]
