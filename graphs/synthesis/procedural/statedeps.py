"""The planner's prediction of a walk's state dependencies, as `rods.signature_state` finds them.

`rods.signature` (version 2) counts state dependencies (a `cd` before relative names, a login
before authenticated calls, an id created earlier) in depth and topology, so the planner must
predict them to pick walks shaped like the seed. `rods.signature_state.execute_observed` walks
the owning instance's whole public state after every call to find created values; the planner
predicts a dozen walks per plan, and that walk was most of a plan's time. Here a call that
only reads (by name, as `READ_ONLY` lists) is taken to create nothing and its state walk is
skipped; everything else (the guards, the created atoms, `state_dependency_candidates`,
`add_state_edges`) is the same code, so the prediction equals what the final task's signature
finds whenever the reading calls indeed create nothing (tests/unit/test_procedural.py checks
the agreement on written variants).
"""

from __future__ import annotations

from typing import Any

from rods.env.world import World
from rods.signature import call_atoms, normalize_text
from rods.signature_state import (
    PRECONDITIONS,
    Effect,
    ObservedCall,
    add_state_edges,
    state_atoms,
    state_dependency_candidates,
)
from rods.tasks import ToolCall

_READ_PREFIXES = (
    "get_", "list", "ls", "pwd", "display", "check", "view", "search", "find", "cat", "grep",
    "wc", "du", "tail", "diff", "estimate", "retrieve", "filter_", "compute_", "gallon_to",
    "liter_to", "sort",
)  # fmt: skip


def reads_only(name: str, owner: str) -> bool:
    return owner == "MathAPI" or name.startswith(_READ_PREFIXES) or "get_login_status" in name


def _snapshot(value: Any) -> Any:
    # as rods.signature_state compares guards: plain data by value, objects by identity
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict | list | tuple):
        return repr(value)
    return ("object", id(value))


def observe(
    world: World, calls: list[ToolCall], initial: dict[str, set[Any]] | None = None
) -> list[ObservedCall]:
    """Run the calls on `world` (mutated) and record each one's effect. `initial` caches each
    class's state atoms before any call (the same for every walk in one world; filled here)."""
    initial = initial if initial is not None else {}
    atoms: dict[str, set[Any]] = {}
    out: list[ObservedCall] = []
    for call in calls:
        owner = world.owner(call.name)
        if owner is None:
            out.append(ObservedCall(call, "", Effect(None, frozenset(), frozenset())))
            continue
        instance = world.instances[owner]
        guards = PRECONDITIONS.get(owner, {})
        before = {a: _snapshot(getattr(instance, a, None)) for a in guards}
        if owner not in atoms:
            if owner not in initial:
                initial[owner] = state_atoms(instance, normalize_text)
            atoms[owner] = initial[owner]  # never mutated: replaced after each writing call
        result = world.execute(call).text
        after = {a: _snapshot(getattr(instance, a, None)) for a in guards}
        created: frozenset[Any] = frozenset()
        if not reads_only(call.name, owner):
            now = state_atoms(instance, normalize_text)
            created = frozenset(a for _, a in now - atoms[owner])
            atoms[owner] = now
        changed = frozenset(a for a in before if before[a] != after[a])
        out.append(ObservedCall(call, result, Effect(owner, changed, created)))
    return out


def predict_state_deps(
    world: World,
    calls: list[ToolCall],
    flow: list[tuple[int, int]],
    initial: dict[str, set[Any]] | None = None,
) -> list[tuple[int, int]]:
    """The state-dependency edges of `calls` run on a fresh `world`, beyond the `flow` edges."""
    observed = observe(world, calls, initial)
    return add_state_edges(len(calls), flow, state_dependency_candidates(observed, call_atoms))
