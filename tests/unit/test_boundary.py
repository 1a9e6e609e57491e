"""Boundary detection rules (pure): group stats, regions, score, request selection invariants."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from rods.boundary import (
    BoundaryRequest,
    DetectorRules,
    GroupStats,
    boundary_metrics,
    boundary_score,
    group_stats,
    rank_key,
    region_of,
    request_id_for,
    select_requests,
    select_uniform_requests,
)
from rods.tasks import CATEGORIES, Signature

CAT = st.sampled_from(CATEGORIES)
REWARD = st.floats(0.0, 1.0, allow_nan=False)


def test_group_stats_mean_variance_region() -> None:
    s = group_stats("multi_turn_base_1", [1.0, 0.0, 1.0, 0.0])
    assert (s.reward_mean, s.reward_var, s.group_size, s.region) == (0.5, 0.25, 4, "boundary")
    assert s.category == "base" and s.scored


def test_nan_rewards_are_counted_not_averaged() -> None:
    s = group_stats("multi_turn_base_1", [1.0, math.nan, 1.0])
    assert s.reward_mean == 1.0 and s.n_unscored == 1 and s.group_size == 3
    empty = group_stats("multi_turn_base_1", [math.nan, math.nan])
    assert empty.region == "unscored" and not empty.scored and math.isnan(empty.reward_mean)


@pytest.mark.parametrize(
    ("mean", "region"),
    [(0.0, "hard"), (0.1999, "hard"), (0.2, "boundary"), (0.5, "boundary"), (0.85, "boundary"),
     (0.8501, "mastered"), (1.0, "mastered"), (math.nan, "unscored")],
)  # fmt: skip
def test_regions_at_default_thresholds(mean: float, region: str) -> None:
    assert region_of(mean) == region


def test_thresholds_are_configurable_and_checked() -> None:
    rules = DetectorRules(hard_below=0.5, mastered_above=0.6)
    assert region_of(0.4, rules) == "hard" and region_of(0.7, rules) == "mastered"
    with pytest.raises(ValidationError):
        DetectorRules(hard_below=0.9, mastered_above=0.1)


@given(REWARD)
def test_score_is_popoviciu_bound(mean: float) -> None:
    score = boundary_score(mean)
    assert 0.0 <= score <= 1.0
    assert score == pytest.approx(boundary_score(1.0 - mean))
    assert score <= boundary_score(0.5) == 1.0


@given(st.lists(REWARD, min_size=1, max_size=32))
def test_group_variance_is_within_the_bound(rewards_G: list[float]) -> None:
    s = group_stats("multi_turn_base_3", rewards_G)
    assert s.reward_var <= boundary_score(s.reward_mean) / 4 + 1e-12


def test_request_model_is_frozen_versioned_and_deterministic() -> None:
    rid = request_id_for("multi_turn_base_7", 12)
    assert rid == request_id_for("multi_turn_base_7", 12) != request_id_for("multi_turn_base_7", 13)
    q = BoundaryRequest(
        request_id=rid, task_id="multi_turn_base_7", category="base", policy_step=12,
        reward_mean=0.5, reward_var=0.25, group_size=16, n_variants=2,
        target_signature=Signature(depth=2, topology="chain"),
    )  # fmt: skip
    assert q.v == 1 and q.score == 1.0  # 4·s²: the variance scaled to [0, 1]
    assert BoundaryRequest.model_validate_json(q.model_dump_json()) == q
    with pytest.raises(ValidationError):
        q.task_id = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        BoundaryRequest.model_validate({**q.model_dump(), "unknown": 1})
    with pytest.raises(ValidationError):
        BoundaryRequest.model_validate({**q.model_dump(), "v": 2})


@st.composite
def step_inputs(draw: st.DrawFn) -> tuple[list[GroupStats], dict[str, int], int, DetectorRules]:
    n = draw(st.integers(0, 30))
    stats_B = []
    for i in range(n):
        cat = draw(CAT)
        rewards_G = draw(
            st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0, math.nan]), min_size=1, max_size=8)
        )
        stats_B.append(group_stats(f"multi_turn_{cat}_{i}", rewards_G))
    step = draw(st.integers(0, 100))
    last = {s.task_id: draw(st.integers(0, step)) for s in stats_B if draw(st.booleans())}
    rules = DetectorRules(
        budget=draw(st.integers(0, 20)),
        category_quota=draw(st.integers(0, 6)),
        cooldown_steps=draw(st.integers(0, 15)),
    )
    return stats_B, last, step, rules


@settings(max_examples=100, deadline=None)
@given(step_inputs())
def test_selection_invariants(
    inputs: tuple[list[GroupStats], dict[str, int], int, DetectorRules],
) -> None:
    stats_B, last, step, rules = inputs
    out = select_requests(stats_B, step, last, rules)
    by_id = {s.task_id: s for s in stats_B}
    assert len(out) <= rules.budget
    assert len({q.task_id for q in out}) == len(out)
    per_cat: dict[str, int] = {}
    for q in out:
        s = by_id[q.task_id]
        assert s.region == "boundary" and s.reward_var > rules.min_var
        assert q.task_id not in last or step - last[q.task_id] >= rules.cooldown_steps
        assert q.request_id == request_id_for(q.task_id, step) and q.policy_step == step
        assert (q.reward_mean, q.reward_var, q.group_size) == (
            s.reward_mean,
            s.reward_var,
            s.group_size,
        )
        per_cat[q.category] = per_cat.get(q.category, 0) + 1
    assert all(n <= rules.category_quota for n in per_cat.values())
    keys = [rank_key(by_id[q.task_id]) for q in out]
    assert keys == sorted(keys)
    # Greedy maximality: an eligible task is left out only when the budget or its quota is full,
    # or a better-ranked one filled them.
    chosen = {q.task_id for q in out}
    for s in stats_B:
        eligible = s.region == "boundary" and s.reward_var > rules.min_var and (
            s.task_id not in last or step - last[s.task_id] >= rules.cooldown_steps
        )
        if eligible and s.task_id not in chosen:
            quota_full = per_cat.get(s.category, 0) == rules.category_quota
            assert len(out) == rules.budget or quota_full
            if out and not quota_full:
                assert s.reward_var <= out[-1].reward_var


@settings(max_examples=40, deadline=None)
@given(step_inputs(), st.randoms())
def test_selection_ignores_input_order(inputs, rnd) -> None:
    stats_B, last, step, rules = inputs
    shuffled = list(stats_B)
    rnd.shuffle(shuffled)
    assert select_requests(shuffled, step, last, rules) == select_requests(
        stats_B, step, last, rules
    )


def test_selection_example_budget_quota_cooldown() -> None:
    stats_B = [group_stats(f"multi_turn_base_{i}", [1.0, 0.0]) for i in range(6)]
    stats_B += [group_stats("multi_turn_miss_func_1", [1.0, 1.0, 0.0])]
    rules = DetectorRules(budget=3, category_quota=2, cooldown_steps=10)
    out = select_requests(stats_B, 20, {"multi_turn_base_0": 15, "multi_turn_base_1": 10}, rules)
    # base_0 cools down (5 < 10 steps); base_1 is due again (10 steps); quota 2 for base.
    assert [q.task_id for q in out] == [
        "multi_turn_base_1",
        "multi_turn_base_2",
        "multi_turn_miss_func_1",
    ]
    sig = Signature(depth=3)
    out = select_requests(stats_B, 20, {}, rules, signatures={"multi_turn_base_0": sig})
    assert out[0].target_signature == sig


def test_metrics_are_flat_and_fractions_sum_to_one() -> None:
    stats_B = [
        group_stats("multi_turn_base_1", [0.0, 0.0]),
        group_stats("multi_turn_base_2", [1.0, 0.0]),
        group_stats("multi_turn_base_3", [1.0, 1.0]),
        group_stats("multi_turn_base_4", [math.nan]),
    ]
    m = boundary_metrics(stats_B, n_requests=1)
    assert all(k.startswith("boundary/") for k in m)
    assert (
        m["boundary/frac_hard"] + m["boundary/frac_boundary"] + m["boundary/frac_mastered"] == 1.0
    )
    assert m["boundary/var_boundary"] == 0.25 and m["boundary/unscored_groups"] == 1.0
    assert m["boundary/requests"] == 1.0
    assert m["boundary/frac_zero_var"] == pytest.approx(2 / 3)  # [0, 0] and [1, 1]
    assert m["boundary/zero_var_in_band"] == 0.0


def test_a_group_without_spread_is_never_requested_whatever_its_mean() -> None:
    # sixteen 0.5s: mean in the band, 4r̄(1−r̄) = 1 (the old ranking's best), variance 0
    flat = group_stats("multi_turn_miss_func_1", [0.5] * 16)
    spread = group_stats("multi_turn_base_2", [0.0] * 12 + [1.0] * 4)  # r̄ = 0.25, s² = 0.1875
    assert flat.region == spread.region == "boundary"
    out = select_requests([flat, spread], 3, {}, DetectorRules(budget=4))
    assert [q.task_id for q in out] == ["multi_turn_base_2"]
    m = boundary_metrics([flat, spread], len(out))
    assert m["boundary/zero_var_in_band"] == 1.0 and m["boundary/frac_zero_var"] == 0.5
    # ε is a rule: with ε above the spread group's variance, nothing is requested
    assert select_requests([flat, spread], 3, {}, DetectorRules(min_var=0.2)) == []


def test_requests_rank_by_observed_variance_not_by_the_mean_bound() -> None:
    # r̄ = 0.5 (4r̄(1−r̄) = 1) but little spread, vs r̄ = 0.25 (0.75) with more spread
    near_half = group_stats("multi_turn_base_1", [0.25, 0.75] * 2 + [0.5] * 12)  # s² = 0.015625
    spread = group_stats("multi_turn_base_2", [0.0, 0.0, 0.0, 1.0])  # s² = 0.1875
    assert boundary_score(near_half.reward_mean) > boundary_score(spread.reward_mean)
    assert spread.reward_var > near_half.reward_var > 0
    out = select_requests([near_half, spread], 0, {}, DetectorRules(budget=1))
    assert [q.task_id for q in out] == ["multi_turn_base_2"]
    # equal variance: the mean closer to 0.5 wins the tie
    a = group_stats("multi_turn_base_3", [0.0, 0.5])  # r̄ 0.25, s² 0.0625
    b = group_stats("multi_turn_base_4", [0.25, 0.75])  # r̄ 0.5, s² 0.0625
    assert a.reward_var == b.reward_var
    tie = select_requests([a, b], 0, {}, DetectorRules(budget=1))
    assert [q.task_id for q in tie] == ["multi_turn_base_4"]


def test_uniform_arm_draws_the_same_count_from_the_batch_at_random() -> None:
    stats_B = [group_stats(f"multi_turn_base_{i}", [0.0, 0.0]) for i in range(10)]  # all hard
    stats_B += [group_stats(f"multi_turn_miss_param_{i}", [0.0, 1.0]) for i in range(10)]
    rules = DetectorRules(budget=4, category_quota=4)
    n = len(select_requests(stats_B, 7, {}, rules))
    assert n == 4
    draws = [select_uniform_requests(stats_B, step, {}, n, 0, rules) for step in range(20)]
    assert all(len(d) == n for d in draws)
    picked = {q.task_id for d in draws for q in d}
    assert any(t.startswith("multi_turn_base_") for t in picked)  # hard tasks too
    # deterministic in (seed, step, batch), not in the batch's order
    assert select_uniform_requests(stats_B[::-1], 7, {}, n, 0, rules) == draws[7]
    assert select_uniform_requests(stats_B, 7, {}, n, 1, rules) != draws[7]
    # cooldown and the per-category quota apply as in the rods arm
    cooling = {s.task_id: 7 for s in stats_B[:19]}
    assert [q.task_id for q in select_uniform_requests(stats_B, 7, cooling, n, 0, rules)] == [
        stats_B[19].task_id
    ]
    one_cat = DetectorRules(budget=4, category_quota=1)
    cats = [q.category for q in select_uniform_requests(stats_B, 3, {}, 4, 0, one_cat)]
    assert len(cats) == len(set(cats))
