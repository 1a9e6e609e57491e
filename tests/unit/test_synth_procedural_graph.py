"""The graph with the procedural backend on training seeds of all 8 classes and all 4 categories.

Each accepted variant is checked independently of the graph: the gates again with a fresh cache,
the category's shape, its lineage, and bfcl-eval's own `multi_turn_checker` accepting its ground
truth as the model's answer.
"""

from __future__ import annotations

import pytest

from graphs.synthesis import gates
from graphs.synthesis.graph import synthesize
from graphs.synthesis.procedural import ProceduralBackend
from rods.env.official import official_correct
from rods.env.reward import GroundTruthCache
from rods.signature import compute_signature
from rods.tasks import CATEGORIES, CLASSES, Task, category_of, load_split, split_ids

SEEDS_PER_CELL = 3  # first training seeds involving the class, in BFCL order


def _seeds(cls: str, category: str) -> list[Task]:
    return [t for t in load_split("train", [category]) if cls in t.involved_classes][:SEEDS_PER_CELL]


def _check_variant(task: Task, seed: Task, cache: GroundTruthCache) -> None:
    assert category_of(task.id) == seed.category and task.id not in split_ids("eval")
    meta = task.rods
    assert meta.origin == "synthetic" and meta.parent_id == seed.id and meta.generation == 1
    assert meta.synthesizer == "procedural" and meta.signature == compute_signature(task)
    assert gates.run_gates(task, cache) == []
    assert set(task.involved_classes) == set(seed.involved_classes)
    sig = meta.signature
    if seed.category == "miss_func":
        assert task.missed_function and sig.holdout_turns
    if seed.category == "miss_param":
        assert sig.clarification_turns
    if seed.category == "long_context":
        assert task.long_context
    runtime = cache.runtime(task)
    assert official_correct(task, [list(t.calls) for t in runtime.ground_truth.turns])


@pytest.mark.parametrize("cls", CLASSES)
def test_every_class_and_category_yields_valid_variants(cls):
    backend = ProceduralBackend()
    cache = GroundTruthCache()
    for category in CATEGORIES:
        seeds = _seeds(cls, category)
        assert seeds, (cls, category)
        accepted = 0
        for i, seed in enumerate(seeds):
            res = synthesize(seed, n_variants=1, backend=backend, rng_seed=i)
            assert res.exceptions == [], res.exceptions
            for task in res.tasks:
                _check_variant(task, seed, cache)
                accepted += 1
        assert accepted >= 1, (cls, category)
