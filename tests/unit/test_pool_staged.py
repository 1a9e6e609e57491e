"""The staged queue's rules (cap, ageing, promotion ties) and the run config's `[pool]` section."""

from __future__ import annotations

from rods.config import Settings
from rods.pool import PoolRules, TaskRecord, promotion_plan, staged_sweep_plan
from rods.store.memory import MemoryBuffer
from tests.unit.test_buffer_memory import check_invariants, seeds, variant


def staged(i: int, priority: float = 0.5, admitted_step: int = 0) -> TaskRecord:
    return TaskRecord(task_id=f"multi_turn_base_x{i}", category="base", origin="synthetic",
                      state="staged", seq=i, priority=priority, admitted_step=admitted_step)


def test_promotion_is_by_score_then_age() -> None:
    queue = [staged(3), staged(2), staged(1), staged(4, priority=0.9)]
    # quota ⌊0.5 · 4⌋ = 2: the best priority, then the oldest of the tied ones
    assert promotion_plan(queue, 4, 0, PoolRules(beta=0.5)) == ["multi_turn_base_x4", "multi_turn_base_x1"]


def test_staged_cap_retires_the_lowest_ranked_and_ageing_the_old() -> None:
    queue = [staged(1, 0.5, 0), staged(2, 0.1, 5), staged(3, 0.5, 6), staged(4, 0.9, 7), staged(5, 0.5, 8)]
    assert staged_sweep_plan(queue, 20, PoolRules()) == []  # both rules off by default
    capped = staged_sweep_plan(queue, 20, PoolRules(staged_cap=2))
    # promotion order: x4 (0.9), x1, x3, x5 (0.5, oldest first), x2 (0.1): keep x4, x1;
    # the cap retires from the end of that order
    assert capped == [("multi_turn_base_x2", "staged_cap"), ("multi_turn_base_x5", "staged_cap"),
                      ("multi_turn_base_x3", "staged_cap")]
    aged = staged_sweep_plan(queue, 20, PoolRules(staged_max_age=13))  # admitted before step 7
    assert aged == [("multi_turn_base_x1", "staged_age"), ("multi_turn_base_x2", "staged_age"),
                    ("multi_turn_base_x3", "staged_age")]
    both = staged_sweep_plan(queue, 20, PoolRules(staged_max_age=13, staged_cap=1))
    # x1–x3 age out; of x4 and x5 the cap keeps x4 (higher priority)
    assert both[-1] == ("multi_turn_base_x5", "staged_cap") and len(both) == 4


def test_a_buffer_sweep_keeps_the_staged_queue_within_its_cap() -> None:
    rules = PoolRules(beta=0.0, staged_cap=3, staged_max_age=50)
    buf = MemoryBuffer(rules=rules)
    buf.load_seeds(list(seeds()))
    admitted = {t.id for t in seeds()}
    for k in range(8):
        res = buf.add_staged([variant(k)], step=k, priority=0.1 * (k % 2))
        admitted |= set(res.admitted)
    retired, promoted = buf.end_epoch(10)
    assert promoted == [] and len(retired) == 5
    left = buf.records(["staged"])
    # the odd k have priority 0.1; of those the oldest three stay (k = 1, 3, 5)
    assert [r.admitted_step for r in left] == [1, 3, 5] and all(r.priority > 0 for r in left)
    assert buf.counts()["retired/reason/staged_cap"] == 5
    retired, _ = buf.end_epoch(53)  # admitted at steps 1, 3, 5: over 50 steps old, 1 and not 3, 5
    assert [reason for _, reason in retired] == ["staged_age"]
    check_invariants(buf, admitted)


def test_pool_section_overrides_the_environment_defaults_for_this_run() -> None:
    from trainer.config import TrainConfig
    from trainer.loop import run_settings

    cfg = TrainConfig.model_validate(
        {"pool": {"stale_steps": 40, "staged_cap": 64, "staged_max_age": 30, "beta": 0.1,
                  "retire_hard_below": 0.05}}
    )
    rules = run_settings(cfg, Settings(p_max=123)).pool_rules()
    assert (rules.stale_steps, rules.staged_cap, rules.staged_max_age, rules.beta) == (40, 64, 30, 0.1)
    assert rules.p_max == 123  # not set in the file: the process setting stays
    assert run_settings(TrainConfig(), Settings()).pool_rules() == Settings().pool_rules()
    assert "retire_hard_below" in cfg.pool.overrides()
