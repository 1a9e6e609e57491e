"""One contract suite for the replay buffer, run against the in-memory store and real Redis."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rods.pool import STATES, PoolRules, Report
from rods.store.buffer import RedisBuffer
from rods.store.contract import ReplayBuffer
from rods.store.events import replay_states
from rods.store.memory import MemoryBuffer
from rods.tasks import Task, load_split

pytestmark = pytest.mark.integration
RULES = PoolRules(beta=0.5, p_max=6, stale_steps=6, history_k=3, min_obs=2)


@pytest.fixture(params=["memory", "redis"])
def buf(
    request: pytest.FixtureRequest, redis_client: redis.Redis, run_name: str
) -> Iterator[ReplayBuffer]:
    if request.param == "memory":
        yield MemoryBuffer(run_name, RULES)
    else:
        yield RedisBuffer(redis_client, run_name, RULES)


Variant = Callable[..., Task]


def test_seeds_load_once(buf: ReplayBuffer, seeds: tuple[Task, ...]) -> None:
    res = buf.load_seeds(list(seeds))
    assert res.admitted == [t.id for t in seeds] and not res.duplicates
    again = buf.load_seeds(list(seeds))
    assert again.admitted == [] and again.duplicates == [t.id for t in seeds]
    assert buf.counts()["active"] == 12 and buf.counts()["active/origin/seed"] == 12
    assert buf.counts()["active/region/unseen"] == 12
    assert buf.get_tasks([seeds[3].id])[0].to_bfcl() == seeds[3].to_bfcl()


def test_admission_is_idempotent_in_every_state(
    buf: ReplayBuffer, seeds, make_variant: Variant
) -> None:
    buf.load_seeds(list(seeds))
    a, b, c = make_variant(1), make_variant(2), make_variant(3)
    assert buf.add_staged([a, b, c, a], step=1).admitted == [a.id, b.id, c.id]
    buf.promote(step=2)  # β·12 = 6 ≥ 3: all promoted
    buf.retire([b.id], step=3)
    for t in (a, b, c):  # active, retired, active
        assert buf.add_staged([t], step=4).duplicates == [t.id]
    assert buf.counts()["retired"] == 1 and buf.counts()["active/origin/synthetic"] == 2


def test_request_output_is_stored_at_most_once(buf: ReplayBuffer, make_variant: Variant) -> None:
    first = buf.add_staged([make_variant(1, "x")], step=1, request_id="multi_turn_base_1@1")
    assert first.admitted and buf.is_request_done("multi_turn_base_1@1")
    # A re-run of the same request produced different content: still nothing is stored.
    again = buf.add_staged([make_variant(1, "y")], step=1, request_id="multi_turn_base_1@1")
    assert again.already_done and not again.admitted
    assert buf.counts()["staged"] == 1 and not buf.is_request_done("other@1")


def test_promotion_best_first_within_beta_and_p_max(
    buf: ReplayBuffer, seeds, make_variant: Variant
) -> None:
    buf.load_seeds(list(seeds[:4]))
    low = [make_variant(k) for k in range(0, 4)]
    high = [make_variant(k) for k in range(4, 8)]
    buf.add_staged(low, step=1, priority=0.2)
    buf.add_staged(high, step=1, priority=0.9)
    assert buf.promote(step=2) == [t.id for t in high[:2]]  # ⌊0.5 · 4⌋ = 2, best priority first
    # ⌊0.5 · 6⌋ = 3: the 2 high left, then the oldest low (equal priority: admission order)
    assert buf.promote(step=3) == [t.id for t in high[2:]] + [low[0].id]
    assert buf.counts()["active"] == 9 and buf.counts()["staged"] == 3
    assert buf.promote(step=4) == [low[1].id]  # P_max 6 leaves room for 1
    assert buf.promote(step=5) == []
    assert buf.counts()["active/origin/synthetic"] == 6


def test_report_outcomes_and_stats(buf: ReplayBuffer, seeds, make_variant: Variant) -> None:
    buf.load_seeds(list(seeds[:3]))
    staged = make_variant(5)
    buf.add_staged([staged], step=0)
    s0, s1, s2 = (t.id for t in seeds[:3])
    res = buf.report(
        [
            Report(task_id=s0, reward_mean=0.5, reward_var=0.25),
            Report(task_id=s0, reward_mean=0.6, reward_var=0.2),  # same task, same step
            Report(task_id=s1, reward_mean=math.nan, reward_var=math.nan),
            Report(task_id=staged.id, reward_mean=0.5, reward_var=0.25),
            Report(task_id="multi_turn_base_x0", reward_mean=0.5, reward_var=0.25),
        ],
        step=7,
    )
    assert res.outcomes == {
        s0: "applied", s1: "unscored", staged.id: "not_active", "multi_turn_base_x0": "unknown",
    }  # fmt: skip
    assert buf.report([Report(task_id=s0, reward_mean=0.9, reward_var=0.0)], step=7).outcomes == {
        s0: "duplicate"
    }
    buf.report(
        [
            Report(task_id=s0, reward_mean=0.7, reward_var=0.1),
            Report(task_id=s2, reward_mean=0.0, reward_var=0.0),
        ],
        step=8,
    )
    rec = buf.get_record(s0)
    assert rec is not None and (rec.visits, rec.last_mean, rec.last_seen_step, rec.history) == (
        2,
        0.7,
        8,
        (0.5, 0.7),
    )
    assert buf.counts()["active/region/boundary"] == 1 and buf.counts()["active/region/hard"] == 1
    assert buf.get_record("multi_turn_base_x0") is None


def test_report_time_retirement(buf: ReplayBuffer, seeds, make_variant: Variant) -> None:
    buf.load_seeds(list(seeds))
    kids = [make_variant(k) for k in range(3)]
    buf.add_staged(kids, step=0)
    buf.promote(step=1)
    trial, master, hard = (t.id for t in kids)
    res = buf.report(
        [
            Report(task_id=trial, reward_mean=0.1, reward_var=0.0),
            Report(task_id=master, reward_mean=1.0, reward_var=0.0),
            Report(task_id=hard, reward_mean=0.3, reward_var=0.0),
            Report(task_id=seeds[0].id, reward_mean=0.0, reward_var=0.0),
        ],
        step=2,
    )
    assert res.retired == [(trial, "trial")]
    res = buf.report(
        [
            Report(task_id=master, reward_mean=0.98, reward_var=0.0),
            Report(task_id=hard, reward_mean=0.0, reward_var=0.0),
            Report(task_id=seeds[0].id, reward_mean=0.0, reward_var=0.0),
        ],
        step=3,
    )
    assert sorted(res.retired) == sorted([(master, "mastered"), (hard, "hard")])  # seed stays
    c = buf.counts()
    assert (c["retired/reason/trial"], c["retired/reason/mastered"], c["retired/reason/hard"]) == (
        1,
        1,
        1,
    )
    assert replay_states(buf.events())[trial] == ["staged", "active", "retired"]


def test_sweep_stale_and_over_cap(
    buf: ReplayBuffer, seeds, make_variant: Variant, check_buffer
) -> None:
    buf.load_seeds(list(seeds))
    kids = [make_variant(k) for k in range(6)]
    buf.add_staged(kids, step=0)
    buf.promote(step=0)
    buf.report(
        [
            Report(task_id=t.id, reward_mean=m, reward_var=0.0)
            for t, m in zip(kids[:5], [0.5, 0.3, 0.9, 0.6, 0.4], strict=True)
        ],
        step=5,
    )
    assert buf.sweep(step=6) == []
    buf.rules = buf.rules.model_copy(update={"p_max": 3})
    retired = buf.sweep(step=11)  # kids[5] unobserved since step 0: stale; then prune 5 → 3
    assert retired[0] == (kids[5].id, "stale")
    assert sorted(retired[1:]) == sorted([(kids[2].id, "over_cap"), (kids[1].id, "over_cap")])
    assert {r.origin for r in buf.records(["retired"])} == {"synthetic"}
    check_buffer(buf, {t.id for t in seeds} | {t.id for t in kids})


def test_sampling(buf: ReplayBuffer, seeds, make_variant: Variant) -> None:
    assert buf.sample_ids(4) == [] and buf.sample(4, rng=0) == []
    buf.load_seeds(list(seeds))
    buf.add_staged([make_variant(1)], step=0)  # staged: never sampled
    assert len(set(buf.sample_ids(32))) == 12
    got = buf.sample(5, rng=3)
    assert len({t.id for t in got}) == 5 and {t.id for t in got} <= {t.id for t in seeds}
    assert [t.id for t in got] == buf.sample_ids(5, rng=3)
    assert len(buf.sample_ids(5, rng=3, mode="boundary")) == 5
    with pytest.raises(KeyError):
        buf.get_tasks(["multi_turn_base_x0"])


def test_export_import_round_trip(
    buf: ReplayBuffer, seeds, make_variant: Variant, redis_client, run_name
) -> None:
    buf.load_seeds(list(seeds))
    buf.add_staged([make_variant(k) for k in range(8)], step=1, priority=0.7)
    buf.promote(2)
    buf.report(
        [
            Report(task_id=make_variant(0).id, reward_mean=0.1, reward_var=0.0),
            Report(task_id=seeds[0].id, reward_mean=0.5, reward_var=0.25),
        ],
        step=3,
    )
    first = buf.export_tasks()
    assert [t.rods.model_extra["buffer"]["state"] for t in first[:1]] == ["active"]  # type: ignore[union-attr]
    other = (
        MemoryBuffer("copy", RULES)
        if isinstance(buf, MemoryBuffer)
        else RedisBuffer(redis_client, run_name + "-copy", RULES)
    )
    try:
        assert len(other.import_tasks(first).admitted) == len(first) == 20
        assert [t.to_bfcl() for t in other.export_tasks()] == [t.to_bfcl() for t in first]
        assert other.counts() == buf.counts()
        assert other.import_tasks(first).duplicates == [t.id for t in first]
    finally:
        if isinstance(other, RedisBuffer):
            other.drop_run()


def test_import_refuses_held_out_tasks(buf: ReplayBuffer) -> None:
    held_out = load_split("eval")[0]
    assert held_out.id in buf.import_tasks([held_out]).rejected
    assert buf.counts() == {}


def test_event_log_replays_the_pool(
    buf: ReplayBuffer, seeds, make_variant: Variant, check_buffer
) -> None:
    buf.load_seeds(list(seeds))
    kids = [make_variant(k) for k in range(4)]
    buf.add_staged(kids, step=1, request_id="r@1")
    buf.promote(2)
    buf.report([Report(task_id=kids[0].id, reward_mean=0.0, reward_var=0.0)], step=3)
    buf.retire([kids[1].id], step=4)
    buf.sweep(step=100)
    events = buf.events()
    assert [e.kind for e in events] == ["admit", "admit", "promote", "report", "retire", "sweep"]
    assert [e.step for e in events] == [0, 1, 2, 3, 4, 100]
    assert events[1].request_id == "r@1" and events[1].task_ids == [t.id for t in kids]
    assert [(r.state, r.retired_reason) for r in events[3].records] == [("retired", "trial")]
    assert {r.retired_reason for r in events[5].records} == {"stale"}
    assert replay_states(events)[kids[0].id] == ["staged", "active", "retired"]
    assert len(buf.events(count=3)) == 3
    check_buffer(buf, {t.id for t in seeds} | {t.id for t in kids})


def test_same_rng_same_sample_on_both_stores(
    redis_client, run_name, seeds, make_variant: Variant
) -> None:
    stores = [MemoryBuffer(run_name, RULES), RedisBuffer(redis_client, run_name, RULES)]
    for s in stores:
        s.load_seeds(list(seeds))
        s.add_staged([make_variant(k) for k in range(4)], step=1)
        s.promote(2)
        s.report([Report(task_id=t.id, reward_mean=0.5, reward_var=0.2) for t in seeds[:3]], step=3)
    mem, red = stores
    for seed in range(5):
        for mode in ("uniform", "boundary"):
            assert mem.sample_ids(6, rng=seed, mode=mode) == red.sample_ids(6, rng=seed, mode=mode)  # type: ignore[arg-type]
    assert [r.model_dump(exclude={"seq"}) for r in mem.records()] == [
        r.model_dump(exclude={"seq"}) for r in red.records()
    ]
    assert mem.counts() == red.counts()


def test_redis_keys_are_namespaced(
    redis_client: redis.Redis, run_name: str, seeds, make_variant: Variant
) -> None:
    buf = RedisBuffer(redis_client, run_name, RULES)
    buf.load_seeds(list(seeds[:2]))
    buf.add_staged([make_variant(1)], step=0, request_id="q@0")
    keys = set(redis_client.scan_iter(match=f"rods:{run_name}:*"))
    assert {
        f"rods:{run_name}:{k}"
        for k in ("tasks", "active", "staged", "counts", "events", "seq", "requests_done")
    } <= keys
    assert all(k.startswith("rods:") for k in redis_client.scan_iter())
    assert buf.drop_run() == len(keys) and not list(
        redis_client.scan_iter(match=f"rods:{run_name}:*")
    )
    with pytest.raises(ValueError, match="bad run name"):
        RedisBuffer(redis_client, "a b:c", RULES)


def test_states_iterate_in_contract_order(buf: ReplayBuffer, seeds, make_variant: Variant) -> None:
    buf.load_seeds(list(seeds[:2]))
    buf.add_staged([make_variant(2), make_variant(3)], step=0)
    buf.retire([seeds[1].id], step=1)
    order = [(r.state, r.task_id) for r in buf.records()]
    assert [s for s, _ in order] == ["active", "staged", "staged", "retired"]
    assert [r.state for r in buf.records(["retired"])] == ["retired"]
    assert set(STATES) == {"staged", "active", "retired"}


def test_two_clients_never_lose_an_update(redis_client, run_name, seeds) -> None:  # type: ignore[no-untyped-def]
    """Two clients of one run report the same task in turn: each report reads the current
    record, so neither overwrites the other's update."""
    a, b = RedisBuffer(redis_client, run_name, RULES), RedisBuffer(redis_client, run_name, RULES)
    a.load_seeds(list(seeds[:2]))
    x = seeds[0].id
    assert a.report([Report(task_id=x, reward_mean=0.5, reward_var=0.2)], step=1).applied == 1
    assert b.report([Report(task_id=x, reward_mean=0.6, reward_var=0.2)], step=2).applied == 1
    assert a.report([Report(task_id=x, reward_mean=0.7, reward_var=0.2)], step=3).applied == 1
    assert a.conflicts == b.conflicts == 0
    rec = b.get_record(x)
    assert rec is not None and rec.visits == 3 and rec.history == (0.5, 0.6, 0.7)
    b.retire([x], step=4)
    assert a.report([Report(task_id=x, reward_mean=0.7, reward_var=0.2)], step=5).outcomes == {
        x: "not_active"
    }


def test_a_live_part_in_another_layout_is_a_clear_error(
    redis_client: redis.Redis, run_name: str, seeds
) -> None:
    """A record changed by hand is refused with the layout error, and the report writes
    nothing (in particular not over the damaged part)."""
    buf = RedisBuffer(redis_client, run_name, RULES)
    buf.load_seeds(list(seeds[:2]))
    a, b = seeds[0].id, seeds[1].id
    redis_client.hset(buf.keys.live, a, '{"visits": 3}')
    before = buf.events()
    with pytest.raises(ValueError, match="not in the layout RODS writes"):
        buf.report([Report(task_id=t, reward_mean=0.5, reward_var=0.1) for t in (b, a)], step=1)
    assert redis_client.hget(buf.keys.live, a) == '{"visits": 3}'
    rec = buf.get_record(b)
    assert buf.events() == before and rec is not None and rec.visits == 0


def test_task_cache_is_optional_and_equivalent(buf: ReplayBuffer, seeds) -> None:  # type: ignore[no-untyped-def]
    buf.load_seeds(list(seeds))
    ids = [t.id for t in seeds[:5]]
    cached = [t.to_bfcl() for t in buf.get_tasks(ids + ids[:2])]
    buf.task_cache_size = 0
    assert [t.to_bfcl() for t in buf.get_tasks(ids + ids[:2])] == cached
    with pytest.raises(KeyError):
        buf.get_tasks([ids[0], "multi_turn_base_x1"])


OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("admit"),
            st.lists(st.integers(0, 20), max_size=4),
            st.none() | st.integers(0, 3),
        ),
        st.tuples(st.just("promote")),
        st.tuples(st.just("sweep")),
        st.tuples(
            st.just("report"),
            st.integers(0, 2**16),
            st.lists(st.sampled_from([0.0, 0.1, 0.5, 0.97, 1.0]), max_size=6),
        ),
        st.tuples(st.just("retire"), st.integers(0, 40)),
    ),
    max_size=15,
)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=OPS)
def test_redis_and_memory_agree_on_any_operation_sequence(
    redis_client, seeds, make_variant, check_buffer, ops
) -> None:  # type: ignore[no-untyped-def]
    run = f"t-prop-{uuid.uuid4().hex[:8]}"
    stores: list[ReplayBuffer] = [MemoryBuffer(run, RULES), RedisBuffer(redis_client, run, RULES)]
    try:
        admitted: set[str] = {t.id for t in seeds[:6]}
        for s in stores:
            s.load_seeds(list(seeds[:6]))
        for step, (name, *args) in enumerate(ops, start=1):
            for s in stores:
                if name == "admit":
                    rid = None if args[1] is None else f"r{args[1]}"
                    admitted |= set(
                        s.add_staged([make_variant(k) for k in args[0]], step, 0.5, rid).admitted
                    )
                elif name == "promote":
                    s.promote(step)
                elif name == "sweep":
                    s.sweep(step)
                elif name == "report":
                    ids = s.sample_ids(len(args[1]), rng=args[0])
                    s.report(
                        [
                            Report(task_id=t, reward_mean=m, reward_var=0.0)
                            for t, m in zip(
                                ids, args[1], strict=False
                            )  # fewer ids if the pool is small
                        ],
                        step,
                    )
                elif name == "retire":
                    known = sorted(admitted)
                    s.retire([known[args[0] % len(known)]], step)
        mem, red = stores
        assert mem.records() == red.records()
        assert mem.counts() == red.counts()
        assert [e.model_dump(exclude={"t"}) for e in mem.events()] == [
            e.model_dump(exclude={"t"}) for e in red.events()
        ]
        for s in stores:
            check_buffer(s, admitted)
    finally:
        stores[1].drop_run()  # type: ignore[attr-defined]
