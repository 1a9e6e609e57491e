"""Our progress reward's "correct" agrees with bfcl-eval's own `multi_turn_checker`.

docs/ARCHITECTURE.md §3: a trajectory is officially correct iff every turn with non-empty ground truth
succeeds, and this must match the official checker on every trajectory. Checked on the ground
truth of all 800 tasks and on a deterministic sample of perturbed trajectories
(`rods.env.perturb`) across the four categories.

Needs: the installed `bfcl-eval` package only (no services, no GPU).
"""

from __future__ import annotations

import random
from collections import Counter

import pytest

from rods.env.official import decoded_turns, official_correct
from rods.env.perturb import COMBO, KINDS, UNKNOWN_FUNCTION, perturb, perturbations
from rods.env.reward import GroundTruthCache, score_calls
from rods.tasks import (
    CATEGORIES,
    Task,
    ToolCall,
    get_bfcl_task,
    load_bfcl_tasks,
    task_function_docs,
)

SEED = 20260325
PER_TASK = 5  # 800 tasks x 5 = 4,000 perturbed trajectories


@pytest.fixture(scope="module")
def tasks() -> list[Task]:
    return load_bfcl_tasks()


@pytest.fixture(scope="module")
def cache(tasks: list[Task]) -> GroundTruthCache:
    cache = GroundTruthCache()
    for task in tasks:
        cache.runtime(task)
    return cache


def _gt_calls(task: Task, cache: GroundTruthCache) -> list[list[ToolCall]]:
    return [list(turn.calls) for turn in cache.runtime(task).ground_truth.turns]


def test_ground_truth_of_all_800_tasks_is_correct_for_us_and_for_bfcl(tasks, cache):
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import multi_turn_checker

    assert len(tasks) == 800
    assert Counter(t.category for t in tasks) == {c: 200 for c in CATEGORIES}
    ours_bad, official_bad = [], []
    for i, task in enumerate(tasks):
        gt = _gt_calls(task, cache)
        score = score_calls(task, gt, cache)
        if not (score.correct and score.progress == 1.0 and all(score.turn_success)):
            ours_bad.append((task.id, score.turn_success, score.errors))
        # Our bound calls through the adapter the evaluation uses...
        if not official_correct(task, gt):
            official_bad.append((task.id, "rods.env.official"))
        # ...and the ground truth exactly as written (positional arguments included), as
        # bfcl-eval's runner decodes it: one step per turn, no step for an empty turn.
        decoded = [[list(turn)] if turn else [] for turn in task.ground_truth]
        name = f"gt_agree_{i}"
        try:
            result = multi_turn_checker(
                decoded, task.ground_truth, task.to_bfcl(), task.category, name
            )
        finally:
            _drop_official_instances(name)
        if not result["valid"]:
            official_bad.append((task.id, result.get("error_type")))
    assert not ours_bad, f"ground truth not scored 1.0 by us: {ours_bad[:10]}"
    assert not official_bad, f"ground truth rejected by bfcl-eval: {official_bad[:10]}"


def _drop_official_instances(model_name: str) -> None:
    from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_utils

    scope = vars(multi_turn_utils)
    for key in [k for k in scope if k.startswith(model_name + "_")]:
        del scope[key]


@pytest.mark.slow
def test_perturbed_trajectories_agree_with_bfcl(tasks, cache):
    from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_utils

    globals_before = len(vars(multi_turn_utils))
    rows = []  # (task id, category, kind, ours, official, trajectory)
    unsafe = []  # calls outside the generator's contract, or that the official adapter refused
    for task in tasks:
        documented = {doc["name"] for doc in task_function_docs(task)}
        for p in perturbations(task, _gt_calls(task, cache), SEED, PER_TASK):
            calls = p.as_lists()
            flat = [c for turn in calls for c in turn]
            strings = [s for turn in decoded_turns(task, calls) for step in turn for s in step]
            unsafe += [
                (task.id, p.kind, c.to_python())
                for c, s in zip(flat, strings, strict=True)
                if c.name != UNKNOWN_FUNCTION and (c.name not in documented or s != c.to_python())
            ]
            ours = score_calls(task, calls, cache).correct
            official = official_correct(task, calls)
            rows.append((task.id, task.category, p.kind, ours, official, calls))
    # The checker saw exactly our calls (bar the deliberately unknown name).
    assert not unsafe, unsafe[:10]

    disagreements = [r for r in rows if r[3] != r[4]]
    report = "\n".join(
        f"{tid} [{kind}] ours={ours} official={official} calls={[[c.to_python() for c in t] for t in calls]}"
        for tid, _, kind, ours, official, calls in disagreements[:20]
    )
    assert not disagreements, f"{len(disagreements)}/{len(rows)} disagreements:\n{report}"

    # The set is large, covers every category and kind, and lands on both sides of the verdict.
    assert len(rows) >= 3000
    assert Counter(r[1] for r in rows) == {c: 200 * PER_TASK for c in CATEGORIES}
    kinds = Counter(r[2] if "+" not in r[2] else COMBO for r in rows)
    assert set(kinds) == {*KINDS, COMBO}, kinds
    assert min(kinds.values()) >= 50, kinds
    share_correct = sum(r[4] for r in rows) / len(rows)
    assert 0.15 <= share_correct <= 0.6, share_correct
    # Emptying a turn that has ground truth always fails; an extra read-only call mostly passes.
    assert not any(r[4] for r in rows if r[2] == "empty_turn")
    reads = [r[4] for r in rows if r[2] == "extra_read_call"]
    assert sum(reads) / len(reads) > 0.8
    # Perturbations change the ground truth (a combo may, rarely, undo itself).
    gt_by_id = {t.id: _gt_calls(t, cache) for t in tasks}
    unchanged = sum(r[5] == gt_by_id[r[0]] for r in rows)
    assert unchanged <= len(rows) // 100, unchanged
    # The official checker's per-trajectory instances were all removed again.
    assert len(vars(multi_turn_utils)) == globals_before


def test_perturbations_are_deterministic_and_keep_the_turn_count(cache):
    task = get_bfcl_task("multi_turn_miss_param_7")
    gt = _gt_calls(task, cache)
    a = perturbations(task, gt, SEED, 30)
    b = perturbations(task, gt, SEED, 30)
    assert a == b
    assert a != perturbations(task, gt, SEED + 1, 30)
    assert all(len(p.calls_per_turn) == task.n_turns for p in a)


def test_each_kind_does_what_its_name_says(cache):
    task = get_bfcl_task("multi_turn_base_0")
    gt = _gt_calls(task, cache)
    n_gt = sum(map(len, gt))
    rng = random.Random(0)

    def run(kind: str) -> list[list[ToolCall]]:
        p = perturb(task, gt, rng, kind)
        assert p is not None and p.kind == kind
        return p.as_lists()

    assert sum(map(len, run("drop_call"))) == n_gt - 1
    assert sum(map(len, run("duplicate_call"))) == n_gt + 1
    assert sum(map(len, run("extra_read_call"))) == n_gt + 1
    assert sum(1 for t in run("empty_turn") if not t) == sum(1 for t in gt if not t) + 1
    moved = run("move_call_next")
    assert sum(map(len, moved)) == n_gt and [len(t) for t in moved] != [len(t) for t in gt]
    assert any(c.name == UNKNOWN_FUNCTION for t in run("unknown_function") for c in t)
    reordered = run("reorder_calls")
    assert [sorted(c.to_python() for c in t) for t in reordered] == [
        sorted(c.to_python() for c in t) for t in gt
    ]
    assert reordered != gt
    changed = run("change_argument")
    assert [[c.name for c in t] for t in changed] == [[c.name for c in t] for t in gt]
    assert changed != gt
    renamed = run("wrong_argument_name")
    assert [[sorted(c.arguments) for c in t] for t in renamed] != [
        [sorted(c.arguments) for c in t] for t in gt
    ]
    # base_0 has no empty ground-truth turn; miss_param tasks do.
    assert perturb(task, gt, rng, "call_in_empty_turn") is None
    mp = get_bfcl_task("multi_turn_miss_param_7")
    mp_gt = _gt_calls(mp, cache)
    empty = [u for u, t in enumerate(mp.ground_truth) if not t]
    assert empty
    p = perturb(mp, mp_gt, rng, "call_in_empty_turn")
    assert p is not None and any(p.calls_per_turn[u] for u in empty)
    with pytest.raises(ValueError, match="unknown perturbation kind"):
        perturb(task, gt, rng, "no_such_kind")
