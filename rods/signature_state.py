"""State dependencies of a ground truth: which earlier call left the state a later call needs.

`rods.signature` traces values passed from one result into a later argument (data flow). A call
also depends on state that an earlier call set without passing any value: a `cd` before relative
paths, a login before an authenticated call, a directory or ticket created before it is used.
This module finds those, from the ground truth as executed in a fresh `World` (never from text,
never `exec`); `rods.signature` adds them to the dependency DAG next to the data-flow edges.

Two detectors, both observed while the calls run (`execute_observed`):

1. Preconditions (`PRECONDITIONS`): per class, the attributes a method checks before it acts,
   read off bfcl-eval's simulator code (a unit test re-derives the table from that code, so a
   new bfcl-eval version that changes a guard fails a test instead of drifting):
   - GorillaFileSystem `_current_dir`: every method resolves names in the working directory;
   - TwitterAPI / TradingBot `authenticated`, MessageAPI / TicketAPI `current_user`, TravelAPI
     `access_token`: the methods that refuse to act without a login;
   - VehicleControlAPI: `startEngine` checks doors, brake pedal and fuel; `setCruiseControl`
     checks that the engine runs.
   Call j of method m depends on the latest earlier call i of the same class whose execution
   changed an attribute m checks (its value before and after i differ: compared by value for
   plain data, by identity for objects such as a directory). A login that finds the user
   already logged in, or a `cd('.')`, changes nothing and adds no edge.
2. Created values: a value that call i added to its instance's public state (a string of 2+
   alphanumerics, or an integer of 2+ digits, at a place in the state where it was not before:
   a new directory, a moved file, a new ticket id) and that a later call j passes as an argument
   (whole, or as an identifier-like token, as `rods.signature` cuts atoms) gives the edge
   (latest such i, j).

Redundant edges are dropped (`add_state_edges`): a state edge (i, j) is added only when j is not
already reachable from i through the data-flow edges and the state edges kept so far (closest
producers first), so depth is unchanged by the pruning and a `cd` read by a chain of calls adds
one edge per chain, not one per call.
Limits: an effect through a private attribute other than those named (a random generator's
state) is not seen; a created value reused by coincidence (a new file named like an unrelated
later argument) makes a spurious edge.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rods.env.calls import CallSyntaxError, parse_python_call
from rods.env.world import World
from rods.tasks import Task, ToolCall

ALL_METHODS: tuple[str, ...] = ()  # in PRECONDITIONS: the attribute guards every method

# class -> attribute -> the methods that read it before acting (ALL_METHODS: every method).
PRECONDITIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "GorillaFileSystem": {"_current_dir": ALL_METHODS},
    "TwitterAPI": {
        "authenticated": (
            "comment",
            "follow_user",
            "list_all_following",
            "post_tweet",
            "posting_get_login_status",
            "retweet",
            "unfollow_user",
        )
    },
    "MessageAPI": {
        "current_user": (
            "delete_message",
            "get_message_stats",
            "message_get_login_status",
            "search_messages",
            "send_message",
            "view_messages_sent",
        )
    },
    "TicketAPI": {"current_user": ("create_ticket", "get_user_tickets", "ticket_get_login_status")},
    "TradingBot": {
        "authenticated": (
            "fund_account",
            "get_account_info",
            "get_order_history",
            "get_transaction_history",
            "get_watchlist",
            "place_order",
            "remove_stock_from_watchlist",
            "trading_get_login_status",
            "withdraw_funds",
        )
    },
    "TravelAPI": {
        "access_token": (
            "book_flight",
            "cancel_booking",
            "get_booking_history",
            "get_credit_card_balance",
            "purchase_insurance",
            "register_credit_card",
            "retrieve_invoice",
            "set_budget_limit",
        )
    },
    "VehicleControlAPI": {
        "remainingUnlockedDoors": ("startEngine",),
        "doorStatus": ("startEngine",),
        "brakePedalStatus": ("startEngine",),
        "_brakePedalForce": ("startEngine",),
        "fuelLevel": ("startEngine",),
        "engine_state": ("setCruiseControl",),
    },
}


@dataclass(frozen=True)
class Effect:
    """What executing one call changed: the guarded attributes and the values it created."""

    owner: str | None  # the class of the call (None: it did not bind)
    changed: frozenset[str]  # attributes of PRECONDITIONS[owner] whose value changed
    created: frozenset[str | float]  # atoms new in the owner's public state


def _snapshot(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict | list | tuple):
        return repr(value)  # plain data compared by value (it may be mutated in place)
    return ("object", id(value))  # a directory object: by identity


def _atom(value: Any, normalize: Callable[[str], str]) -> str | float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return float(value) if abs(value) >= 10 else None
    if isinstance(value, str) and sum(c.isalnum() for c in value) >= 2:
        return normalize(value)
    return None


def state_atoms(instance: Any, normalize: Callable[[str], str]) -> set[tuple[tuple[str, ...], str | float]]:
    """(path, atom) of every string or integer (dict keys included) in an instance's public state."""
    out: set[tuple[tuple[str, ...], str | float]] = set()
    seen: set[int] = set()

    def walk(value: Any, path: tuple[str, ...]) -> None:
        atom = _atom(value, normalize)
        if atom is not None:
            out.add((path, atom))
            return
        if isinstance(value, bool | int | float | str) or value is None or id(value) in seen:
            return
        seen.add(id(value))
        if isinstance(value, dict):
            for k, v in value.items():
                key_atom = _atom(k, normalize)
                if key_atom is not None:
                    out.add(((*path, "#key"), key_atom))
                walk(v, (*path, str(k)))
        elif isinstance(value, list | tuple | set | frozenset):
            for i, v in enumerate(value):
                walk(v, (*path, str(i)))
        elif hasattr(value, "__dict__") and not isinstance(value, type):
            for k, v in vars(value).items():
                if not k.startswith("_"):
                    walk(v, (*path, k))

    for k, v in vars(instance).items():
        if not k.startswith("_"):
            walk(v, (k,))
    return out


def _guards(instance: Any, owner: str) -> dict[str, Any]:
    return {a: _snapshot(getattr(instance, a, None)) for a in PRECONDITIONS.get(owner, {})}


@dataclass(frozen=True)
class ObservedCall:
    call: ToolCall | None
    result: str
    effect: Effect


NO_EFFECT = Effect(None, frozenset(), frozenset())


def observe_call(
    world: World,
    call: ToolCall,
    atoms: dict[str, set[tuple[tuple[str, ...], str | float]]],
    normalize: Callable[[str], str],
    *,
    creates: bool = True,
    initial: dict[str, set[tuple[tuple[str, ...], str | float]]] | None = None,
) -> ObservedCall:
    """Execute one bound call on `world` (mutated) and record its effect.

    `atoms` holds each class's state atoms as of its last observed call (updated here).
    `initial`, when given, caches a class's atoms before any call, for several runs on identical
    worlds (the planner's walks). `creates=False` takes the call to create nothing and skips the
    state walk after it (the planner's cheaper prediction for calls that only read)."""
    owner = world.owner(call.name)
    if not owner:
        return ObservedCall(call, world.execute(call).text, NO_EFFECT)
    instance = world.instances[owner]
    before = _guards(instance, owner)
    if owner not in atoms:
        if initial is not None and owner in initial:
            atoms[owner] = initial[owner]  # never mutated: replaced after each creating call
        else:
            atoms[owner] = state_atoms(instance, normalize)
            if initial is not None:
                initial[owner] = atoms[owner]
    result = world.execute(call).text
    after = _guards(instance, owner)
    created: frozenset[str | float] = frozenset()
    if creates:
        now = state_atoms(instance, normalize)
        created = frozenset(a for _, a in now - atoms[owner])
        atoms[owner] = now
    changed = frozenset(a for a in before if before[a] != after[a])
    return ObservedCall(call, result, Effect(owner, changed, created))


def execute_observed(task: Task, world: World, normalize: Callable[[str], str]) -> list[ObservedCall]:
    """Run every ground-truth call on `world` (mutated), in order, recording each one's effect."""
    atoms: dict[str, set[tuple[tuple[str, ...], str | float]]] = {}
    out: list[ObservedCall] = []
    for sources in task.ground_truth:
        for source in sources:
            try:
                call = world.bind_python_call(parse_python_call(source))
            except (CallSyntaxError, KeyError, TypeError) as e:
                out.append(ObservedCall(None, f"Error during execution: {e}", NO_EFFECT))
                continue
            out.append(observe_call(world, call, atoms, normalize))
    return out


def guarded_by(owner: str, method: str) -> tuple[str, ...]:
    """The attributes of `owner` that `method` checks before acting."""
    return tuple(
        a for a, methods in PRECONDITIONS.get(owner, {}).items() if methods == ALL_METHODS or method in methods
    )


def state_dependency_candidates(
    calls: Sequence[ObservedCall], atoms_of: Callable[[ToolCall], Iterable[str | float]]
) -> list[tuple[int, int]]:
    """(i, j) pairs: j needs a precondition i set, or passes a value i created (docstring)."""
    out: list[tuple[int, int]] = []
    for j, observed in enumerate(calls):
        if observed.call is None or observed.effect.owner is None:
            continue
        owner = observed.effect.owner
        producers: set[int] = set()
        for attribute in guarded_by(owner, observed.call.name):
            for i in range(j - 1, -1, -1):
                if calls[i].effect.owner == owner and attribute in calls[i].effect.changed:
                    producers.add(i)
                    break
        for atom in atoms_of(observed.call):
            for i in range(j - 1, -1, -1):
                if atom in calls[i].effect.created:
                    producers.add(i)
                    break
        out += [(i, j) for i in sorted(producers)]
    return out


def add_state_edges(
    n_calls: int, data_edges: Iterable[tuple[int, int]], candidates: Iterable[tuple[int, int]]
) -> list[tuple[int, int]]:
    """The candidate state edges that are not implied by a path already in the DAG (docstring)."""
    successors: list[set[int]] = [set() for _ in range(n_calls)]
    for i, j in data_edges:
        successors[i].add(j)

    def reachable(i: int, j: int) -> bool:
        stack, seen = [i], {i}
        while stack:
            for k in successors[stack.pop()]:
                if k == j:
                    return True
                if k < j and k not in seen:
                    seen.add(k)
                    stack.append(k)
        return False

    kept: list[tuple[int, int]] = []
    for i, j in sorted(set(candidates), key=lambda e: (e[1], -e[0])):
        if not reachable(i, j):
            successors[i].add(j)
            kept.append((i, j))
    return sorted(kept)
