"""The near-duplicate gates on BFCL's own seeds: long-context filler is not content, and the four
categories of one scenario are not pool duplicates of each other when validated as seeds.

Finding (`rods synth validate` on the 400 training seeds, before `rods.shingles`): five
long_context training seeds (18, 20, 35, 41, 43) scored 0.70–0.77 against held-out
long_context_30. Their base scenarios score 0.007: what they shared was bfcl-eval's long-context
filler (one financial report appended to files, copied into `send_message`/`post_tweet`
arguments by their ground truths) — a false positive of the test, not held-out content in the
training split.
"""

from __future__ import annotations

import pytest

from cli.synth import held_out_overlap, validate_tasks
from graphs.synthesis import gates
from rods.shingles import filler_shingles, task_shingles
from rods.tasks import Task, get_bfcl_task, load_split

PADDED_SEEDS = [f"multi_turn_long_context_{n}" for n in (18, 20, 35, 41, 43)]


def _renamed(task: Task, new_id: str) -> Task:
    return task.model_copy(update={"id": new_id})


@pytest.mark.parametrize("seed_id", PADDED_SEEDS)
def test_long_context_filler_does_not_make_a_seed_a_held_out_near_copy(seed_id: str) -> None:
    seed = get_bfcl_task(seed_id)
    nearest, similarity = gates.eval_index().nearest(seed)
    assert similarity < 0.3, (nearest, similarity)  # 0.70–0.77 when the filler counted
    assert task_shingles(seed) & filler_shingles() == frozenset()


def test_no_training_seed_is_near_a_held_out_task_and_copies_still_are() -> None:
    evals = gates.eval_index()
    assert max(evals.nearest(t)[1] for t in load_split("train")) < evals.threshold
    for held_id in ("multi_turn_long_context_30", "multi_turn_base_14"):
        copy = _renamed(get_bfcl_task(held_id), "multi_turn_long_context_x1")
        nearest, similarity = evals.nearest(copy)
        assert (nearest, similarity) == (held_id, 1.0)
        assert held_out_overlap(copy) is not None and "near-duplicate of held-out" in held_out_overlap(copy)


def test_validating_the_training_seeds_finds_no_duplicates_among_them() -> None:
    results = dict(validate_tasks(load_split("train")))
    flagged = {tid: r for tid, r in results.items() if {"pool_duplicate", "eval_duplicate"} & set(r)}
    assert flagged == {}  # was 298 pool duplicates and 5 held-out near-copies
    assert len(results) == 400


def test_a_renamed_copy_of_a_seed_is_still_a_pool_duplicate_of_it() -> None:
    seed = get_bfcl_task("multi_turn_base_0")
    twin = get_bfcl_task("multi_turn_miss_param_0")  # the same scenario, another category
    copy = _renamed(seed, "multi_turn_base_x7")
    results = dict(validate_tasks([seed, twin, copy]))
    assert "pool_duplicate" not in results[seed.id] and "pool_duplicate" not in results[twin.id]
    assert "pool_duplicate" in results[copy.id]
    # and a seed after a synthetic task that copies it is the duplicate of that task
    assert "pool_duplicate" in dict(validate_tasks([copy, seed]))[seed.id]
