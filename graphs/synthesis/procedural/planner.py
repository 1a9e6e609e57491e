"""Skill-aligned resampling: function sequences of the seed's classes, shaped like the seed.

The planner walks each class's API graph (`apigraph.py`) on a scratch copy of the seed's world:
for every slot it draws a function (favouring ones that consume what earlier results offer when
the seed threads results through calls), puts the enablers of its shut gates in front (login
before posting, lock + brake before starting the engine), samples arguments with the same
samplers the execute stage uses, and executes them; a draw that errors is undone and another
function is tried. So a plan is feasible in the seed's state at least once, not just plausible.

Several candidate walks are made and the one whose predicted signature is closest to the seed's
(`rods.signature.signature_distance`, structure weights) wins; the prediction (data flow and
state dependencies) is `predict.py`'s. Walking stops early once a walk is close enough, or
when a dozen walks came nowhere near the seed (more rarely help, and cost most of a run).

Shape: 2–6 turns (the seed's turns with calls, clamped: every training seed has at most 6), 1–4
calls per turn (the seed's counts, clamped; enablers may raise a turn to 4), one class per turn,
in the order the seed's turns use them (one user's story moving between apps as the seed's does),
and a world of its own: the seed's config with its values redrawn (`world.vary_config`).

long_context seeds: the walk must read long results — replayed in the simulators' long-context
mode, its longest result must be more than `LONG_GAIN` characters longer than in the base mode
(the final check, `gates.check_final`; BFCL's own long_context tasks pass it in 85 of 100).
Functions whose results grow in that mode are favoured, and a walk without the gain loses to any
walk with it.
"""

from __future__ import annotations

import pickle
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

from graphs.synthesis.backend import Failure, Plan, PlanContext
from graphs.synthesis.patches import error_message
from graphs.synthesis.procedural.apigraph import (
    ALWAYS_FAILS,
    CLOSERS,
    CONSUMES,
    ENABLER,
    GATES,
    PRODUCES,
    consumes_offered,
    shut_gates,
    takes_number,
)
from graphs.synthesis.procedural.flow import Flow
from graphs.synthesis.procedural.predict import (
    FlowEdges,
    lower_bound,
    predict_signature,
)
from graphs.synthesis.procedural.samplers import sample_arguments
from graphs.synthesis.procedural.world import vary_config
from rods.env.world import World, WorldTemplate
from rods.signature import (
    STRUCTURE_WEIGHTS,
    signature_distance,
)
from rods.tasks import Signature, Task, ToolCall, function_docs

MIN_TURNS, MAX_TURNS, MAX_CALLS = 2, 6, 4
LONG_GAIN = 200  # characters a long_context walk's results must gain in long-context mode
# Functions whose results grow in the simulators' long-context mode (read off bfcl-eval's
# `if self.long_context` branches and the extended file contents, listings, cards and bookings).
LONG_READERS = frozenset(
    {
        "ls", "cat", "grep", "sort", "tail", "wc", "du", "find",
        "get_available_stocks", "get_order_details", "get_stock_info", "get_transaction_history",
        "get_watchlist", "get_order_history",
        "book_flight", "get_flight_cost", "get_all_credit_cards", "get_booking_history",
        "activateParkingBrake", "check_tire_pressure", "displayCarStatus", "estimate_distance",
        "get_outside_temperature_from_google",
    }
)  # fmt: skip
LONG_CLASSES = frozenset({"GorillaFileSystem", "TradingBot", "TravelAPI", "VehicleControlAPI"})
N_CANDIDATES = 24  # at most this many walks per plan() call; the closest to the seed wins
GOOD_ENOUGH = 0.1  # stop walking once a candidate is this close (the gate's tolerance is 0.15)
EARLY, CLOSE_ENOUGH = 4, 0.13  # after this many walks, stop at a candidate this close
GIVE_UP_AFTER, GIVE_UP_ABOVE = 12, 0.2  # after this many walks, stop when none is this close
_TRIES_PER_SLOT = 8  # functions tried for one slot before the turn is closed short


@dataclass
class Walk:
    """One candidate: calls per turn with their results, and its predicted signature."""

    turns: list[list[tuple[ToolCall, str]]]
    signature: Signature
    distance: float = 1.0


def _targets(sig: Signature) -> list[int]:
    active = [n for n in sig.calls_per_turn if n] or [max(1, sig.n_calls)]
    n_turns = min(MAX_TURNS, max(MIN_TURNS, len(active)))
    counts = [active[min(i, len(active) - 1)] for i in range(n_turns)]
    return [min(MAX_CALLS, max(1, c)) for c in counts]


def turn_classes(classes: tuple[str, ...], n_turns: int, offset: int) -> list[str]:
    """One class per turn; classes alternate, starting at `offset`."""
    order = list(classes)
    if "MathAPI" in order and len(order) > 1:  # numbers to compute come from the other class
        order.remove("MathAPI")
        order.insert(1, "MathAPI")
    return [order[(u + offset) % len(order)] for u in range(n_turns)]


def _expand(function: str, world: World, depth: int = 0) -> list[str] | None:
    """Enablers of `function`'s shut gates (recursively), then the function; None if impossible."""
    seq: list[str] = []
    for gate in shut_gates(function, world):
        enabler = ENABLER.get(gate)
        if enabler is None or enabler == function or depth > 3:
            return None
        sub = _expand(enabler, world, depth + 1)
        if sub is None:
            return None
        seq += [f for f in sub if f not in seq]
    return seq + [function]


def _weights(
    names: list[str],
    world: World,
    earlier: FlowEdges,
    turn: list[tuple[ToolCall, str]],
    want_flow: bool,
    last_turn: bool,
    topology: str = "independent",
    want_long: bool = False,
) -> list[float]:
    flow, fed = earlier.flow, earlier.fed  # fed: out-degree of each earlier call so far
    used = {c.name for c in flow.calls}
    in_turn = {c.name for c, _ in turn}
    bare = {c.name for c in flow.calls if not c.arguments}  # made without arguments
    offered = {o.kind for o in flow.offers}
    meanings = {o.meaning for o in flow.offers if o.kind == "number"}
    out = []
    for f in names:
        w = 1.0
        if f in ALWAYS_FAILS or (f in CLOSERS and not last_turn):
            w = 0.0
        elif f in bare and f not in ("cd",):
            w = 0.05  # a second bare call (ls(), pwd()) would duplicate the first
        else:
            pairs_up = topology in ("fan-in", "dag") and f in _PAIRED_SOURCES
            if f in used and not pairs_up:
                w *= 0.1 if f in in_turn else 0.3
            if pairs_up:
                sources = len({o.call for o in flow.offers if o.kind == _PAIRED_SOURCES[f]})
                # the two sources one call merges (two zip codes → a distance)
                w *= {0: 3.0, 1: 6.0}.get(sources, 1.0)
            if consumes_offered(f, offered, meanings):
                w *= 5.0 if want_flow else 0.2
                w *= _shape_bonus(topology, _producers(f, flow), fed)
            elif topology in ("fan-in", "dag") and PRODUCES.get(f):
                w *= 3.0  # a fresh, independent source for a later call to merge
            if f in _SWITCHES and all(GATES[g](world) for g in _SWITCHES[f]):
                w *= 0.3  # a login (or lock, brake, start) whose effect already holds
            if f == "rmdir":
                w *= 0.3  # it always needs its own mkdir first: make that pair rare
            if f.endswith("get_login_status") or f == "get_current_time":
                w *= 0.4
            if f in CLOSERS:
                w *= 0.3
            if want_long and f in LONG_READERS:
                w *= 3.0
        out.append(w)
    return out


# Functions that only switch a state on (logins, locking, braking, starting), with the gates
# they open: worth calling again only while a gate is still shut.
_SWITCHES: dict[str, list[str]] = {
    f: [g for g, e in ENABLER.items() if e == f]
    for f in (
        "authenticate_twitter",
        "trading_login",
        "message_login",
        "ticket_login",
        "authenticate_travel",
        "lockDoors",
        "pressBrakePedal",
        "startEngine",
    )
}

_TWO_FROM_ONE_KIND = frozenset(
    {
        "estimate_distance",
        "add",
        "subtract",
        "multiply",
        "divide",
        "percentage",
        "mean",
        "standard_deviation",
        "min_value",
        "max_value",
        "sum_values",
        "filter_stocks_by_price",
        "notify_price_change",
    }
)


# Sources whose values a later call takes two at a time (estimate_distance takes two zip codes).
_PAIRED_SOURCES = {"get_zipcode_based_on_city": "zipcode", "get_nearest_airport_by_city": "airport"}


def _producers(function: str, flow: Flow) -> set[int]:
    """Earlier calls the function's arguments will most likely take values from."""
    out: set[int] = set()
    for kind in CONSUMES.get(function, frozenset()):
        calls = sorted(
            {o.call for o in flow.offers
             if o.kind == kind and (kind != "number" or takes_number(function, (o.meaning,)))},
            reverse=True,
        )  # fmt: skip
        out.update(calls[: 2 if function in _TWO_FROM_ONE_KIND else 1])
    return out


def _shape_bonus(topology: str, producers: set[int], fed: Counter[int]) -> float:
    """Favour a consumer whose edges move the walk toward the seed's topology."""
    if not producers:
        return 1.0
    if topology in ("fan-out", "dag") and any(fed[p] >= 1 for p in producers):
        return 4.0
    if topology in ("fan-in", "dag") and len(producers) >= 2:
        return 4.0
    if topology == "chain" and len(producers) == 1 and not any(fed[p] for p in producers):
        return 3.0
    return 1.0


def _draw(names: list[str], weights: list[float], rng: random.Random) -> str | None:
    total = sum(weights)
    if total <= 0:
        return None
    x = rng.random() * total
    for name, w in zip(names, weights, strict=True):
        x -= w
        if x <= 0 and w > 0:
            return name
    return next((n for n, w in zip(names, weights, strict=True) if w > 0), None)


def _try(
    seq: list[str],
    world: World,
    earlier: list[tuple[ToolCall, str]],
    rng: random.Random,
    flow: Flow | None = None,
) -> list[tuple[ToolCall, str]] | None:
    """Sample and execute `seq` after `earlier` (whose offers `flow` holds, if given)."""
    flow = flow.copy() if flow is not None else Flow(earlier)
    new: list[tuple[ToolCall, str]] = []
    for name in seq:
        args = sample_arguments(name, world, earlier + new, rng, flow)
        if isinstance(args, Failure):
            return None
        call = ToolCall(name=name, arguments=args)
        outcome = world.execute(call)
        if error_message(outcome.text) is not None:
            return None
        new.append((call, outcome.text))
        flow.add(call, outcome.text)
    return new


def walk(
    template: WorldTemplate,
    classes: list[str],
    targets: list[int],
    want_flow: bool,
    rng: random.Random,
    topology: str = "independent",
    want_long: bool = False,
) -> list[list[tuple[ToolCall, str]]] | None:
    docs = function_docs()
    world = template.fresh()
    snapshot: bytes | None = None
    earlier: list[tuple[ToolCall, str]] = []
    tracker = FlowEdges()  # edges and offers of `earlier`
    turns: list[list[tuple[ToolCall, str]]] = []
    for u, (cls, target) in enumerate(zip(classes, targets, strict=True)):
        names = [d["name"] for d in docs[cls]]
        turn: list[tuple[ToolCall, str]] = []
        banned: set[str] = set()
        for _ in range(_TRIES_PER_SLOT * target):
            if len(turn) >= target:
                break
            weights = _weights(
                names, world, tracker, turn, want_flow, u == len(targets) - 1, topology, want_long
            )
            weights = [0.0 if n in banned else w for n, w in zip(names, weights, strict=True)]
            f = _draw(names, weights, rng)
            if f is None:
                break
            seq = _expand(f, world)
            if seq is None or len(turn) + len(seq) > MAX_CALLS:
                banned.add(f)
                continue
            if snapshot is None:  # the world as it is before this try (unchanged by a failed one)
                snapshot = pickle.dumps(world.instances, protocol=pickle.HIGHEST_PROTOCOL)
            new = _try(seq, world, earlier, rng, tracker.flow)
            if new is None:
                world = World(pickle.loads(snapshot))  # noqa: S301 - our own bytes
                banned.add(f)
                continue
            snapshot = None
            for call, result in new:
                tracker.add(call, result)
            earlier += new
            turn += new
        if not turn:
            return None
        turns.append(turn)
    return turns


def seed_turn_classes(seed: Task, classes: tuple[str, ...]) -> list[str]:
    """The class each of the seed's turns with calls mostly uses, in order (its story's path)."""
    owner = {d["name"]: cls for cls in classes for d in function_docs().get(cls, [])}
    out = []
    for sources in seed.ground_truth:
        names = [n for n in _call_names(sources) if n in owner]
        if names:
            out.append(Counter(owner[n] for n in names).most_common(1)[0][0])
    return out


def _call_names(sources: list[str]) -> list[str]:
    return [s.split("(", 1)[0].strip() for s in sources if "(" in s]


def story_classes(seed_path: list[str], classes: tuple[str, ...], n_turns: int, k: int) -> list[str]:
    """Candidate k's class per turn: the seed's path (stretched or cut to n_turns); every
    fourth candidate alternates the classes instead, as a fallback when the path does not walk."""
    if not seed_path or k % 4 == 3:
        return turn_classes(classes, n_turns, k)
    return [seed_path[min(len(seed_path) - 1, u * len(seed_path) // n_turns)] for u in range(n_turns)]


def long_gain(classes: list[str], config: dict[str, Any], turns: list[list[tuple[ToolCall, str]]]) -> int:
    """Characters the walk's longest result gains when replayed in long-context mode."""
    shell = Task(
        id="multi_turn_long_context_plan",
        question=[],
        initial_config=config,
        involved_classes=classes,
        ground_truth=[],
    )
    world = World.load(shell)
    calls = [c for t in turns for c in t]
    longest = max((len(world.execute(call).text) for call, _ in calls), default=0)
    return longest - max((len(text) for _, text in calls), default=0)


def _world_template(seed: Task, config: dict[str, Any]) -> WorldTemplate:
    # The execute stage runs a base-shaped draft (augment adds long context later), so plan in
    # the same world: the config loaded without the long-context extensions.
    shell = Task(
        id="multi_turn_base_plan",
        question=[],
        initial_config=config,
        involved_classes=list(seed.involved_classes),
        ground_truth=[],
    )
    return WorldTemplate(shell)


def propose(ctx: PlanContext) -> Plan | Failure:
    """The best of `N_CANDIDATES` walks, as a `Plan` in a world of its own (notes: its shape)."""
    classes = tuple(c for c in ctx.classes if c in function_docs())
    if not classes:
        return Failure("func_sample_failed", "the seed has no known classes")
    # the world's own rng mixes in the seed's id: runs of different seeds with the same rng seed
    # (the CLI's default) must not draw the same names for their worlds
    world_rng = random.Random(f"{ctx.seed.id}/{ctx.rng.getrandbits(64)}")
    config = vary_config(ctx.seed.initial_config, list(ctx.seed.involved_classes), world_rng)
    try:
        template = _world_template(ctx.seed, config)
    except Exception:  # noqa: BLE001 - a varied world that does not load: plan in the seed's
        config = ctx.seed.initial_config
        try:
            template = _world_template(ctx.seed, config)
        except Exception as e:  # noqa: BLE001 - a seed whose state does not load is data
            return Failure("func_sample_failed", f"the seed's world does not load: {e!r}")
    sig = ctx.seed_signature
    targets = _targets(sig)
    want_flow = sig.depth >= 2
    want_long = ctx.seed.category == "long_context" and bool(LONG_CLASSES & set(classes))
    path = seed_turn_classes(ctx.seed, classes)
    best: Walk | None = None
    best_score = float("inf")
    initial: dict[str, Any] = {}  # the world's state atoms, computed once for all walks
    for k in range(N_CANDIDATES):
        if k >= GIVE_UP_AFTER and best_score > GIVE_UP_ABOVE:
            break  # a seed no walk comes near: more walks rarely get within the gate's tolerance
        turns = walk(
            template,
            story_classes(path, classes, len(targets), ctx.attempt + k),
            targets,
            want_flow,
            ctx.rng,
            sig.topology,
            want_long,
        )
        if turns is None:
            continue
        rough = predict_signature(tuple(ctx.seed.involved_classes), turns)
        if lower_bound(rough, sig) >= best_score:
            continue  # cannot win whatever its state dependencies: skip replaying it
        predicted = predict_signature(tuple(ctx.seed.involved_classes), turns, template, initial)
        candidate = Walk(turns, predicted, signature_distance(predicted, sig, STRUCTURE_WEIGHTS))
        score = candidate.distance
        if score >= best_score:
            continue
        if want_long and long_gain(list(ctx.seed.involved_classes), config, turns) <= LONG_GAIN:
            score += 1.0  # any walk that reads long results beats one that does not
            if score >= best_score:
                continue
        best, best_score = candidate, score
        if best_score <= GOOD_ENOUGH or (k >= EARLY and best_score <= CLOSE_ENOUGH):
            break
    if best is None:
        return Failure(
            "func_sample_failed", "no walk over the API graph executed in the variant's world"
        )
    if want_long and best_score > 1.0:
        return Failure("func_sample_failed", "no walk read long results in long-context mode")
    s = best.signature
    notes = f"predicted topology={s.topology} depth={s.depth} cross_turn={s.cross_turn_edges} distance={best.distance:.3f}"
    return Plan(
        turns=tuple(tuple(c.name for c, _ in t) for t in best.turns),
        notes=notes,
        initial_config=config,
    )
