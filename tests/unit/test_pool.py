"""Buffer lifecycle rules (pure): promotion, report-time and sweep retirement, weights, counts."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from rods.pool import (
    PoolRules,
    Report,
    TaskRecord,
    apply_report,
    count_delta,
    count_records,
    is_stale,
    pool_metrics,
    promotion_plan,
    promotion_quota,
    retire,
    retire_reason_after_report,
    sample_weight,
    sweep_plan,
)
from rods.tasks import CATEGORIES

RULES = PoolRules()


def rec(task_id: str = "multi_turn_base_x1", origin: str = "synthetic", **kw: object) -> TaskRecord:
    base = {"task_id": task_id, "category": "base", "origin": origin, "state": "active"}
    return TaskRecord.model_validate({**base, **kw})


def observe(r: TaskRecord, means: list[float], rules: PoolRules = RULES) -> TaskRecord:
    step = r.last_seen_step or 0
    for m in means:
        step += 1
        r = apply_report(r, Report(task_id=r.task_id, reward_mean=m, reward_var=0.0), step, rules)
    return r


# ---------------------------------------------------------------- promotion


def test_promotion_quota_is_beta_of_active_within_p_max() -> None:
    assert promotion_quota(400, 0, RULES) == 80  # β = 20 %
    assert promotion_quota(799, 390, RULES) == 10  # P_max = 400 headroom
    assert promotion_quota(800, 400, RULES) == 0
    assert promotion_quota(0, 0, RULES) == 1  # an empty pool can still start
    assert promotion_quota(400, 0, PoolRules(beta=0.0)) == 0


record_st = st.builds(
    lambda i, prio, seq: rec(f"multi_turn_base_x{i}", state="staged", priority=prio, seq=seq),
    st.integers(0, 10_000),
    st.floats(0.0, 1.0),
    st.integers(0, 1000),
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(record_st, max_size=60, unique_by=lambda r: r.task_id),
    st.integers(0, 900),
    st.integers(0, 450),
    st.floats(0.0, 1.0),
    st.integers(0, 450),
)
def test_promotion_invariants(staged, n_active, n_syn, beta, p_max) -> None:
    rules = PoolRules(beta=beta, p_max=p_max)
    n_syn = min(n_syn, n_active)
    ids = promotion_plan(staged, n_active, n_syn, rules)
    quota = promotion_quota(n_active, n_syn, rules)
    assert len(ids) == min(quota, len(staged))
    assert len(set(ids)) == len(ids)
    assert len(ids) <= max(math.floor(beta * n_active), 1 if n_active == 0 and beta > 0 else 0)
    if n_syn <= p_max:
        assert n_syn + len(ids) <= p_max
    chosen = {r.task_id: r for r in staged if r.task_id in ids}
    left = [r for r in staged if r.task_id not in chosen]
    if chosen and left:  # best priority first; ties by admission order
        worst = min(chosen.values(), key=lambda r: (r.priority, -r.seq))
        assert all((r.priority, -r.seq) <= (worst.priority, -worst.seq) for r in left)


# ---------------------------------------------------------------- reports and retirement


def test_report_updates_stats_and_keeps_k_means() -> None:
    r = observe(rec(), [0.5, 0.6, 0.7, 0.8, 0.9], PoolRules(history_k=3))
    assert r.visits == 5 and r.last_mean == 0.9 and r.last_seen_step == 5
    assert r.history == (0.7, 0.8, 0.9)


def test_trial_eviction_only_at_first_observation_of_synthetic() -> None:
    first = observe(rec(), [0.1])
    assert retire_reason_after_report(first, RULES) == "trial"
    seed = observe(rec("multi_turn_base_1", origin="seed"), [0.1])
    assert retire_reason_after_report(seed, RULES) is None
    later = observe(rec(), [0.5, 0.1])
    assert retire_reason_after_report(later, RULES) is None  # recent mean 0.3 ≥ 0.20


def test_mastered_and_hard_need_min_obs_and_use_recent_mean() -> None:
    assert retire_reason_after_report(observe(rec(), [0.96]), RULES) is None
    assert retire_reason_after_report(observe(rec(), [0.96, 1.0]), RULES) == "mastered"
    assert retire_reason_after_report(observe(rec(), [0.3, 0.1, 0.1, 0.1]), RULES) == "hard"
    assert retire_reason_after_report(observe(rec(), [0.96, 0.9]), RULES) is None  # mean 0.93


def test_seeds_retire_only_when_allowed() -> None:
    seed = observe(rec("multi_turn_base_1", origin="seed"), [1.0, 1.0])
    assert retire_reason_after_report(seed, RULES) is None
    assert retire_reason_after_report(seed, PoolRules(seeds_can_retire=True)) == "mastered"
    old = rec("multi_turn_base_1", origin="seed", promoted_step=0)
    assert sweep_plan([old], 10_000, RULES) == []
    assert sweep_plan([old], 10_000, PoolRules(seeds_can_retire=True)) == [
        ("multi_turn_base_1", "stale")
    ]


def test_stale_counts_from_last_observation_or_promotion() -> None:
    rules = PoolRules(stale_steps=10)
    assert not is_stale(rec(promoted_step=5), 15, rules)
    assert is_stale(rec(promoted_step=5), 16, rules)
    assert not is_stale(rec(promoted_step=0, last_seen_step=20), 30, rules)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["seed", "synthetic"]), st.none() | st.floats(0.0, 1.0)),
        max_size=40,
    ),
    st.integers(0, 30),
    st.booleans(),
)
def test_sweep_invariants(specs, p_max, seeds_can_retire) -> None:
    rules = PoolRules(p_max=p_max, stale_steps=50, seeds_can_retire=seeds_can_retire)
    active = [
        rec(
            f"multi_turn_base_x{i}",
            origin=o,
            last_mean=m,
            last_seen_step=None if m is None else i,
            seq=i,
        )
        for i, (o, m) in enumerate(specs)
    ]
    plan = sweep_plan(active, 40, rules)  # nothing is stale at step 40 (window 50)
    retired = dict(plan)
    assert len(retired) == len(plan)
    assert set(retired.values()) <= {"over_cap"}
    syn = [r for r in active if r.origin == "synthetic"]
    assert len(syn) - len(retired) == min(len(syn), p_max)
    assert all(r.origin == "synthetic" for r in active if r.task_id in retired)
    kept = [r for r in syn if r.task_id not in retired]
    for r in syn:  # pruned: lowest 4r̄(1−r̄) first, unobserved last
        if r.task_id in retired:
            score = 2.0 if r.last_mean is None else 4 * r.last_mean * (1 - r.last_mean)
            assert all(
                score <= (2.0 if k.last_mean is None else 4 * k.last_mean * (1 - k.last_mean))
                for k in kept
            )


# ---------------------------------------------------------------- weights and counts


@given(st.none() | st.floats(0.0, 1.0))
def test_sample_weights_are_positive(mean: float | None) -> None:
    r = rec(last_mean=mean)
    assert sample_weight(r, "uniform", 0.05) == 1.0
    w = sample_weight(r, "boundary", 0.05)
    assert 0.05 <= w <= 1.0
    if mean is None:
        assert w == 1.0


state_st = st.sampled_from(["staged", "active", "retired"])
any_record = st.builds(
    lambda i, state, origin, cat, gen, mean: rec(
        f"multi_turn_{cat}_x{i}",
        origin=origin,
        category=cat,
        state=state,
        generation=gen,
        last_mean=mean,
        retired_reason="stale" if state == "retired" else None,
    ),
    st.integers(0, 50),
    state_st,
    st.sampled_from(["seed", "synthetic"]),
    st.sampled_from(CATEGORIES),
    st.integers(0, 3),
    st.none() | st.floats(0.0, 1.0),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(any_record, st.none() | any_record), max_size=20, unique_by=lambda p: p[0].task_id
    )
)
def test_count_deltas_compose(pairs) -> None:
    before = [old for old, _ in pairs]
    after = [new.model_copy(update={"task_id": old.task_id}) if new else None for old, new in pairs]
    counts = count_records(before, RULES)
    for old, new in zip(before, after, strict=True):
        for k, d in count_delta(old, new, RULES).items():
            counts[k] = counts.get(k, 0) + d
    assert {k: v for k, v in counts.items() if v} == count_records([a for a in after if a], RULES)


def test_counts_and_metrics_shape() -> None:
    records = [
        rec("multi_turn_base_1", origin="seed"),
        observe(rec("multi_turn_miss_func_x2", category="miss_func", generation=1), [0.5]),
        retire(rec("multi_turn_base_x3"), "trial", 3),
    ]
    counts = count_records(records, RULES)
    assert counts["active"] == 2 and counts["retired"] == 1
    assert counts["active/region/unseen"] == 1 and counts["active/region/boundary"] == 1
    assert counts["retired/reason/trial"] == 1 and counts["active/generation/1"] == 1
    m = pool_metrics(counts)
    assert m["buffer/staged"] == 0.0 and m["buffer/active/origin/seed"] == 1.0
