"""The planner's prediction of a walk's state dependencies, as `rods.signature_state` finds them.

`rods.signature` (version 2) counts state dependencies (a `cd` before relative names, a login
before authenticated calls, an id created earlier) in depth and topology, so the planner must
predict them to pick walks shaped like the seed. `rods.signature_state.execute_observed` walks
the owning instance's whole public state after every call to find created values; the planner
predicts a dozen walks per plan, and that walk was most of a plan's time. Here a call that
only reads (by name, as `READ_ONLY` lists) is taken to create nothing and its state walk is
skipped (`observe_call(..., creates=False)`); everything else (the guards, the created atoms,
`state_dependency_candidates`, `add_state_edges`) is the same code, so the prediction equals what the final task's signature
finds whenever the reading calls indeed create nothing (tests/unit/test_procedural.py checks
the agreement on written variants).
"""

from __future__ import annotations

from typing import Any

from rods.env.world import World
from rods.signature import call_atoms, normalize_text
from rods.signature_state import (
    NO_EFFECT,
    ObservedCall,
    add_state_edges,
    observe_call,
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
        if owner is None:  # unbound: not run (the walk is rejected elsewhere)
            out.append(ObservedCall(call, "", NO_EFFECT))
            continue
        creates = not reads_only(call.name, owner)
        out.append(observe_call(world, call, atoms, normalize_text, creates=creates, initial=initial))
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
