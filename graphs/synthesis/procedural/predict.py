"""What a walk's task will look like to `rods.signature`: its data flow and state dependencies.

The planner ranks walks by the distance of their *predicted* signature to the seed's. The
prediction takes a data-flow edge wherever an argument takes a value an earlier result offered
(`flow.Flow`): exactly the values the query writer refers to indirectly, so the final task's
signature finds the same edges; and the state dependencies (`statedeps.py`) from a replay of the
walk on a fresh copy of its world. `lower_bound` lets the planner skip that replay for a walk
that cannot beat the best so far.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from graphs.synthesis.procedural.flow import Flow
from graphs.synthesis.procedural.statedeps import predict_state_deps
from rods.env.world import WorldTemplate
from rods.signature import STRUCTURE_WEIGHTS, dag_depth, distance_components, topology_of
from rods.tasks import Signature, ToolCall


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _leaves(v)]
    if isinstance(value, list | tuple):
        return [x for v in value for x in _leaves(v)]
    return [value]


def _key(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return round(float(value), 6)
    return str(value).lower()


class FlowEdges:
    """`flow_edges` of a growing list of calls, one call at a time (a walk's earlier calls).

    The walk weighs every slot by the edges and offers of the calls so far; growing them with
    each accepted call instead of recomputing them per slot keeps a walk linear in its calls.
    """

    def __init__(self) -> None:
        self.flow = Flow([])  # the offers of the calls added so far
        self.edges: set[tuple[int, int]] = set()
        self.fed: Counter[int] = Counter()  # out-degree of each call so far
        self._said: set[Any] = set()

    def add(self, call: ToolCall, result: str) -> None:
        j = len(self.flow.calls)
        for leaf in _leaves(call.arguments):
            if isinstance(leaf, bool) or leaf is None:
                continue
            offer = self.flow.source(leaf)
            if offer is not None and _key(leaf) not in self._said:
                if (offer.call, j) not in self.edges:
                    self.edges.add((offer.call, j))
                    self.fed[offer.call] += 1
            elif offer is None:
                self._said.add(_key(leaf))
        self.flow.add(call, result)


def flow_edges(calls: list[tuple[ToolCall, str]]) -> list[tuple[int, int]]:
    """Edges (i, j) where call j takes a value call i's result offered (the latest such i).

    A value the user already said in an earlier turn (an argument that did not flow) is not an
    edge: the signature tracer finds it in the user's text first.
    """
    tracker = FlowEdges()
    for call, result in calls:
        tracker.add(call, result)
    return sorted(tracker.edges)


def state_deps(
    template: WorldTemplate,
    turns: list[list[tuple[ToolCall, str]]],
    flow: list[tuple[int, int]],
    initial: dict[str, Any] | None = None,
) -> list[tuple[int, int]]:
    """The walk's state dependencies (a `cd` before relative names, a login, a created id), as
    `rods.signature` finds them: the walk replayed on a fresh copy of its world (`initial`:
    the world's state atoms, shared by the walks of one plan)."""
    return predict_state_deps(template.fresh(), [c for t in turns for c, _ in t], flow, initial)


def predict_signature(
    classes: tuple[str, ...],
    turns: list[list[tuple[ToolCall, str]]],
    template: WorldTemplate | None = None,
    initial: dict[str, Any] | None = None,
) -> Signature:
    """The signature the written task will have: data flow where a value flowed (`flow_edges`),
    plus the state dependencies when the walk's world (`template`) is given."""
    flat = [c for t in turns for c in t]
    turn_of = [u for u, t in enumerate(turns) for _ in t]
    edges = flow_edges(flat)
    deps = state_deps(template, turns, edges, initial) if template is not None else []
    dag = sorted({*edges, *deps})
    return Signature(
        classes=tuple(sorted(classes)),
        functions=tuple(sorted({c.name for c, _ in flat})),
        calls_per_turn=tuple(len(t) for t in turns),
        n_calls=len(flat),
        edges=tuple(edges),
        state_deps=tuple(deps),
        depth=dag_depth(len(flat), dag),
        topology=topology_of(dag),
        cross_turn_edges=sum(turn_of[i] != turn_of[j] for i, j in dag),
    )



# Distance components that state dependencies do not change (they add edges only: depth,
# topology and cross-turn edges move; turns, calls, classes and functions do not).
_EDGE_FREE = ("turns", "calls_per_turn", "calls", "classes", "functions", "category")


def lower_bound(rough: Signature, seed: Signature) -> float:
    """A lower bound of the walk's full distance to the seed, from its data-flow signature."""
    w = STRUCTURE_WEIGHTS.model_dump()
    parts = distance_components(rough, seed)
    return sum(w[k] * parts[k] for k in _EDGE_FREE) / sum(w.values())
