"""The distance between two structural signatures (`rods.signature` re-exports all of it).

`signature_distance` is a weighted mean of per-component distances in [0, 1] (topology, depth,
turns, calls per turn, calls, cross-turn edges, classes, functions, category features); the
synthesis critique uses it to decide whether a variant "matches the structural complexity" of
its seed. Depth, topology and cross-turn edges count data-flow and state-dependency edges alike.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, NonNegativeFloat

from rods.tasks import Signature

# ---------------------------------------------------------------- distance


class DistanceWeights(BaseModel):
    """Weights of the distance components (non-negative); they are normalised by their sum."""

    model_config = ConfigDict(frozen=True)
    topology: NonNegativeFloat = 0.20  # the shape of the data flow is the skill being taught
    depth: NonNegativeFloat = 0.15  # how many results must be threaded through
    turns: NonNegativeFloat = 0.10  # turns with calls
    calls_per_turn: NonNegativeFloat = 0.10  # mean calls in a turn with calls
    calls: NonNegativeFloat = 0.05  # total calls
    cross_turn: NonNegativeFloat = 0.10  # results carried across user turns
    classes: NonNegativeFloat = 0.10  # Jaccard distance of the involved classes
    functions: NonNegativeFloat = (
        0.05  # low: skill-aligned resampling may swap functions of a class
    )
    category: NonNegativeFloat = 0.15  # held-out function, clarification and empty turns


DEFAULT_WEIGHTS = DistanceWeights()
# For comparing a plan before `augment` adds the category's turns with its seed.
STRUCTURE_WEIGHTS = DistanceWeights(category=0.0)
# A suggested "matches" threshold. On BFCL with the default weights, a task and its other-category
# twins are 0.0-0.1 apart, random pairs 0.21 / 0.56 / 0.73 (5th / 50th / 95th percentile); a
# change of topology (0.20; 0.10 between `dag` and a fan) or of depth 2 -> 4 (0.075) plus a
# class swap (0.10) exceed it, a swap of every function (0.05) does not.
MATCH_TOLERANCE = 0.15


def _relative(x: float, y: float) -> float:
    """|x - y| / max(|x|, |y|), 0 when both are 0; in [0, 1] for non-negative x, y."""
    top = max(abs(x), abs(y))
    return abs(x - y) / top if top else 0.0


def _jaccard_distance(a: Iterable[str], b: Iterable[str]) -> float:
    sa, sb = set(a), set(b)
    union = sa | sb
    return 1.0 - len(sa & sb) / len(union) if union else 0.0


def _topology_distance(a: str, b: str) -> float:
    """0 equal; 0.5 between `dag` and a fan (it contains one); 1 otherwise."""
    if a == b:
        return 0.0
    if {a, b} in ({"dag", "fan-out"}, {"dag", "fan-in"}):
        return 0.5
    return 1.0


def _active_turns(s: Signature) -> int:
    return sum(1 for n in s.calls_per_turn if n)


def _mean_calls_per_turn(s: Signature) -> float:
    active = _active_turns(s)
    return sum(s.calls_per_turn) / active if active else 0.0


def distance_components(a: Signature, b: Signature) -> dict[str, float]:
    """Each component of the distance, in [0, 1], keyed like `DistanceWeights`' fields."""
    category = (
        float(bool(a.holdout_turns) != bool(b.holdout_turns))
        + float(bool(a.clarification_turns) != bool(b.clarification_turns))
        + _relative(len(a.empty_turns), len(b.empty_turns))
    ) / 3
    return {
        "topology": _topology_distance(a.topology, b.topology),
        "depth": _relative(a.depth, b.depth),
        "turns": _relative(_active_turns(a), _active_turns(b)),
        "calls_per_turn": _relative(_mean_calls_per_turn(a), _mean_calls_per_turn(b)),
        "calls": _relative(a.n_calls, b.n_calls),
        "cross_turn": _relative(a.cross_turn_edges, b.cross_turn_edges),
        "classes": _jaccard_distance(a.classes, b.classes),
        "functions": _jaccard_distance(a.functions, b.functions),
        "category": category,
    }


def signature_distance(
    a: Signature, b: Signature, weights: DistanceWeights = DEFAULT_WEIGHTS
) -> float:
    """Weighted mean of `distance_components`: symmetric, in [0, 1], 0 for equal signatures."""
    w = weights.model_dump()
    total = sum(w.values())
    if total <= 0:
        raise ValueError("distance weights must have a positive sum")
    parts = distance_components(a, b)
    value = sum(w[k] * parts[k] for k in w) / total
    return min(1.0, max(0.0, value))
