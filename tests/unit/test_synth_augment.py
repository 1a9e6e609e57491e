"""Augment: base-shaped conversations turned into BFCL's miss_func, miss_param, long_context."""

from __future__ import annotations

import random

import pytest

from graphs.synthesis import gates
from graphs.synthesis.augment import augment_body, to_miss_func, to_miss_param
from rods.env.reward import GroundTruthCache
from rods.env.world import World
from rods.signature import compute_signature
from rods.tasks import Task, get_bfcl_task, synthetic_id


def _task(body: dict, category: str) -> Task:
    body = {k: v for k, v in body.items() if k not in ("id", "rods")}
    return Task.model_validate({"id": synthetic_id(category, body), **body})


@pytest.fixture(scope="module")
def base() -> Task:
    return get_bfcl_task("multi_turn_base_5")


@pytest.fixture(scope="module")
def cache() -> GroundTruthCache:
    return GroundTruthCache()


def test_miss_func_reproduces_bfcls_own_transformation(base, cache):
    """BFCL's miss_func_5 is base_5 with post_tweet held out until an inserted empty turn 3."""
    bfcl = get_bfcl_task("multi_turn_miss_func_5")
    body = None
    for s in range(20):  # the hidden function among the turn's new ones is drawn at random
        out = augment_body(base, "miss_func", random.Random(s), seed=bfcl)
        if out["missed_function"] == bfcl.missed_function:
            body = out
            break
    assert body is not None
    task = _task(body, "miss_func")
    assert task.ground_truth == bfcl.ground_truth
    assert [len(q) for q in task.question] == [len(q) for q in bfcl.question]
    assert task.question[3] == [] and task.ground_truth[2] == []
    assert task.question[2] == base.question[2]
    sig = compute_signature(task)
    assert sig.holdout_turns == (3,) and sig.empty_turns == (2,)
    assert gates.check_availability(task) == [] and gates.check_queries(task) == []
    assert gates.check_reexecution(task, cache) == []


def test_miss_func_hides_only_functions_not_used_before(base):
    rng = random.Random(0)
    for _ in range(10):
        body = to_miss_func(base, rng)
        (turn, hidden), = body["missed_function"].items()
        k = int(turn) - 1
        used_before = {s.split("(")[0] for g in base.ground_truth[:k] for s in g}
        assert set(hidden).isdisjoint(used_before)
        assert set(hidden) <= {s.split("(")[0] for s in base.ground_truth[k]}
        assert gates.check_availability(_task(body, "miss_func")) == []


def test_miss_param_drops_a_stated_value_and_adds_the_clarification(base, cache):
    bfcl = get_bfcl_task("multi_turn_miss_param_5")
    body = augment_body(base, "miss_param", random.Random(0), seed=bfcl)
    task = _task(body, "miss_param")
    value = "Another successful task completed today!"
    assert task.n_turns == base.n_turns + 1 == bfcl.n_turns
    assert task.ground_truth == bfcl.ground_truth  # the same turn as BFCL's own miss_param_5
    withheld, supplied = task.question[3][0].content, task.question[4][0].content
    assert value.lower() not in withheld.lower()  # the request simply lacks it
    assert "specify" not in withheld and "will" not in withheld.replace(base.question[3][0].content, "")
    assert f"'{value}'" in supplied and supplied != f"The comment content should be '{value}'."
    sig = compute_signature(task)
    assert sig.clarification_turns == (4,) and sig.empty_turns == (3,)
    assert gates.check_queries(task) == [] and gates.check_reexecution(task, cache) == []


def test_miss_param_needs_a_value_stated_in_one_turn_only(base):
    vague = base.model_copy(
        update={"question": [[m.model_copy(update={"content": "Do the usual."}) for m in q] for q in base.question]}
    )
    assert to_miss_param(vague, random.Random(0)) == "augment_no_value"
    assert augment_body(vague, "miss_param", random.Random(0)) == "augment_no_value"


def test_miss_param_shifts_later_holdout_turns(base):
    body = augment_body(base, "miss_func", random.Random(1))
    holdout = int(next(iter(body["missed_function"])))
    task = _task(body, "miss_func")
    out = to_miss_param(task, random.Random(0), prefer_turn=0)
    assert isinstance(out, dict)
    k = next(u for u, g in enumerate(out["ground_truth"]) if not g and out["question"][u])
    expected = holdout + 1 if holdout > k else holdout
    assert list(out["missed_function"]) == [str(expected)]


def test_miss_func_without_new_functions_fails():
    task = Task.model_validate(
        {
            "id": "multi_turn_base_t",
            "question": [[{"role": "user", "content": "a"}], [{"role": "user", "content": "b"}]],
            "initial_config": {},
            "involved_classes": ["MathAPI"],
            "ground_truth": [[], []],
        }
    )
    assert to_miss_func(task, random.Random(0)) == "augment_no_function"


def test_long_context_keeps_content_and_loads_large_state(base, cache):
    body = augment_body(base, "long_context", random.Random(0))
    task = _task(body, "long_context")
    assert task.id.startswith("multi_turn_long_context_x") and task.long_context
    assert task.question == base.question and task.ground_truth == base.ground_truth
    small = World.load(base).public_state()
    large = World.load(task).public_state()
    assert len(repr(large)) > len(repr(small))  # bfcl-eval's long-context data is loaded
    assert gates.check_reexecution(task, cache) == []


def test_base_is_unchanged(base):
    body = augment_body(base, "base", random.Random(0))
    assert body["question"] == base.model_dump(mode="json")["question"]


def test_supplying_turns_have_enough_openers_that_none_passes_five_percent():
    """Issue 13: with 28 forms (3.6 % each) sampling noise put one form's opener over 5 % of a
    category's miss_param variants in most audits ('that would be' 5.5 %, 'sorry i meant')."""
    from collections import Counter

    from graphs.synthesis.audit_text import opener
    from graphs.synthesis.augment import _SUPPLY

    openers = Counter(
        opener(f.replace("{V}", "'Blue'").format(noun="colour", v="'blue'")) for f in _SUPPLY
    )
    assert len(_SUPPLY) >= 40
    assert max(openers.values()) / len(_SUPPLY) <= 0.025
