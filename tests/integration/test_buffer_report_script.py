"""The Redis store's server-side report script agrees with the Python rules of `rods.pool`.

`RedisBuffer.report` runs the report-time rules (apply_report, retire_reason_after_report,
region_label, sample_weight, count_delta) as one Lua script; the generic path
(`ReplayBuffer._report`: read, `plan_report`, compare-and-set) runs them in Python. Two runs on one
real Redis start from the same random records and get the same random reports, one per path;
results, records, counters, sample weights, state sets and events must be identical.
"""

from __future__ import annotations

import json
import math
import random
import uuid
from collections.abc import Callable

import pytest
import redis

from rods.boundary import DetectorRules
from rods.pool import PoolRules, Report, TaskRecord
from rods.store.buffer import RedisBuffer
from rods.store.contract import ReplayBuffer, with_buffer_block
from rods.tasks import Task

pytestmark = pytest.mark.integration

# Means near every threshold, inexact decimals (so sums round), and plain rewards.
VALUES = [0.0, 0.1, 0.2, 0.2 + 1e-16, 0.19999999999999998, 0.25, 1 / 3, 0.5, 0.85, 0.95]
VALUES += [0.9500000000000001, 0.97, 1.0, 2 / 3, 0.05, 1e-7]


def _value(rng: random.Random) -> float:
    return rng.choice(VALUES) if rng.random() < 0.7 else rng.random()


def _rules(rng: random.Random) -> PoolRules:
    return PoolRules(
        trial_below=rng.choice([0.2, 1 / 3, 0.5]),
        retire_mastered_above=rng.choice([0.95, 0.9, 0.85]),
        retire_hard_below=rng.choice([0.2, 0.25, 0.1]),
        min_obs=rng.randint(1, 4),
        history_k=rng.randint(1, 5),
        seeds_can_retire=rng.random() < 0.5,
        weight_floor=rng.choice([0.05, 0.3]),
        detector=DetectorRules(hard_below=rng.choice([0.2, 0.3]), mastered_above=0.85),
    )


def _record(task: Task, rng: random.Random, rules: PoolRules, seq: int) -> TaskRecord:
    visits = rng.choice([0, 0, 1, 2, 3, 7])
    history = tuple(_value(rng) for _ in range(min(visits, rules.history_k)))
    return TaskRecord(
        task_id=task.id,
        category=task.category,
        origin=task.rods.origin if task.rods else "seed",
        generation=task.rods.generation if task.rods else 0,
        state=rng.choice(["active"] * 6 + ["staged", "retired"]),
        seq=seq,
        priority=rng.random(),
        admitted_step=0,
        promoted_step=0,
        visits=visits,
        last_mean=history[-1] if history else None,
        last_var=rng.random() if history else None,
        last_seen_step=rng.randint(0, 5) if history else None,
        history=history,
    )


def _state(buf: RedisBuffer) -> tuple:
    return (
        buf.records(),
        buf.counts(),
        sorted(buf._active_weights()),
        sorted(buf._ids("retired")),
        [e.model_dump(exclude={"t"}) for e in buf.events()],
    )


@pytest.mark.parametrize("seed", range(8))
def test_script_and_python_rules_agree(
    redis_client: redis.Redis, seeds, make_variant: Callable[..., Task], seed: int
) -> None:
    rng = random.Random(seed)
    for trial in range(6):
        rules = _rules(rng)
        tasks = list(seeds[:6]) + [make_variant(k, f"agree{seed}") for k in range(8)]
        records = [_record(t, rng, rules, i + 1) for i, t in enumerate(tasks)]
        runs = [f"t-agree-{uuid.uuid4().hex[:8]}" for _ in range(2)]
        python, script = (RedisBuffer(redis_client, run, rules) for run in runs)
        try:
            for buf in (python, script):
                buf.import_tasks(
                    [with_buffer_block(t, r) for t, r in zip(tasks, records, strict=True)]
                )
            assert _state(python)[:4] == _state(script)[:4]
            ids = [t.id for t in tasks] + ["multi_turn_base_unknown"]
            for step in range(3, 9):
                reports = []
                for _ in range(rng.randint(0, 12)):
                    # an unscored group (the detector's GroupStats: NaN mean, NaN variance)
                    unscored = rng.random() < 0.1
                    reports.append(
                        Report(
                            task_id=rng.choice(ids),
                            reward_mean=math.nan if unscored else _value(rng),
                            reward_var=math.nan if unscored and rng.random() < 0.5 else _value(rng),
                        )
                    )
                expected = ReplayBuffer._report(python, reports, step)
                assert script.report(reports, step) == expected, (trial, step)
            assert _state(script) == _state(python), trial
            assert script.report_fallbacks == 0
        finally:
            for buf in (python, script):
                buf.drop_run()


def test_records_in_another_layout_take_the_python_path(
    redis_client: redis.Redis, run_name: str, seeds
) -> None:
    """A record not in the layout `encode_record` writes (here: details with their keys sorted,
    which the script must rewrite to retire the task) is never half updated: the script writes
    nothing and the generic path applies the report."""
    buf = RedisBuffer(
        redis_client, run_name, PoolRules(seeds_can_retire=True, min_obs=1, history_k=1)
    )
    buf.load_seeds(list(seeds[:2]))
    a, b = seeds[0].id, seeds[1].id
    details = redis_client.hget(buf.keys.records, a)
    redis_client.hset(buf.keys.records, a, json.dumps(json.loads(details), sort_keys=True))
    res = buf.report([Report(task_id=t, reward_mean=0.5, reward_var=0.1) for t in (a, b)], step=1)
    assert res.outcomes == {a: "applied", b: "applied"} and buf.report_fallbacks == 0
    res = buf.report(
        [Report(task_id=t, reward_mean=m, reward_var=0.1) for t, m in ((b, 0.5), (a, 0.0))], step=2
    )
    assert res.outcomes == {a: "applied", b: "applied"} and buf.report_fallbacks == 1
    assert res.retired == [(a, "hard")]
    assert [(r.task_id, r.state, r.visits) for r in buf.records()] == [
        (b, "active", 2),
        (a, "retired", 2),
    ]
    assert buf.counts()["active/region/boundary"] == 1 and buf.counts()["retired/reason/hard"] == 1


def test_live_lines_in_another_layout_are_a_clear_error(
    redis_client: redis.Redis, run_name: str, seeds
) -> None:
    buf = RedisBuffer(redis_client, run_name, PoolRules())
    buf.load_seeds(list(seeds[:1]))
    a = seeds[0].id
    redis_client.hset(buf.keys.live, a, '{"visits": 3}')
    with pytest.raises(ValueError, match="not in the layout RODS writes"):
        buf.report([Report(task_id=a, reward_mean=0.5, reward_var=0.1)], step=1)
    assert buf.report_fallbacks == 1
    assert redis_client.hget(buf.keys.live, a) == '{"visits": 3}'  # nothing written


def test_inputs_the_script_does_not_take_use_the_python_path(
    redis_client: redis.Redis, seeds
) -> None:
    """An infinite mean, or a scored group whose variance is not finite: the same result as the
    generic path, which takes them (the script is not called)."""
    rules = PoolRules(seeds_can_retire=True, min_obs=1)
    runs = [f"t-odd-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    python, script = (RedisBuffer(redis_client, run, rules) for run in runs)
    try:
        for buf in (python, script):
            buf.load_seeds(list(seeds[:3]))
        a, b, c = (t.id for t in seeds[:3])
        reports = [Report(a, math.inf, 0.1), Report(b, 0.5, math.nan), Report(c, 0.5, 0.25)]
        expected = ReplayBuffer._report(python, reports, 1)
        assert script.report(reports, 1) == expected
        assert expected.outcomes == {a: "applied", b: "applied", c: "applied"}
        assert expected.retired == [(a, "mastered")]
        assert script.records()[0].model_dump_json() == python.records()[0].model_dump_json()
        assert script.report_fallbacks == 0 and script.counts() == python.counts()
    finally:
        for buf in (python, script):
            buf.drop_run()
