"""What an argument sampler sees (`Scope`), how it gives up (`NoArgs`), and the simulators' tables.

A sampler reads the live world (never calls it), the values earlier results offer (`Flow`), and
draws from `rng` only, so the same seed gives the same arguments. Fixed lookup tables of the
simulators (company → symbol, city → airport, flight routes, exchange-rate pairs) are read from
bfcl-eval's own source or by probing a private scratch instance, once per process, so they follow
the installed bfcl-eval instead of a copy that could drift.
"""

from __future__ import annotations

import ast
import functools
import inspect
import random
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from graphs.synthesis.procedural.flow import Flow
from rods import semantics
from rods.env.world import World
from rods.tasks import ToolCall

T = TypeVar("T")


class NoArgs(Exception):  # noqa: N818 - a signal between a sampler and the backend, not an error
    """No valid arguments exist for this call in this state."""


@dataclass
class Scope:
    world: World
    flow: Flow
    rng: random.Random
    made: tuple[ToolCall, ...]  # calls already made (the graph refuses exact duplicates)

    def inst(self, cls: str) -> Any:
        try:
            return self.world.instances[cls]
        except KeyError:
            raise NoArgs(f"{cls} is not part of this world") from None

    def pick(self, items: Sequence[T], what: str = "value") -> T:
        if not items:
            raise NoArgs(f"no {what} to choose from")
        return items[self.rng.randrange(len(items))]

    def flowed(self, kind: str, ok: Callable[[Any], bool] = lambda _: True) -> Any:
        """The most recent valid value an earlier result offers of this kind, or None.

        Deterministic on purpose: the planner predicts a variant's data flow from one draw of
        these samplers and the execute stage draws again; which earlier result feeds which
        argument must not change between the two draws (only literal values may).
        """
        values = [v for v in self.flow.values(kind) if ok(v)]
        return values[0] if values else None

    def flowed_into(
        self, function: str, param: str, args: dict[str, Any] | None = None,
        ok: Callable[[Any], bool] = lambda _: True,
    ) -> Any:  # fmt: skip
        """Like `flowed("number")`, but only a value whose meaning the parameter takes
        (`rods.semantics`: a gallon converter takes gallons, a USD budget takes USD)."""
        want = semantics.param_kind(function, param, args or {})
        by_call: dict[int, list[Any]] = {}
        for o in self.flow.offers:
            if o.kind == "number" and semantics.accepts(want, o.meaning) is True and ok(o.value):
                by_call.setdefault(o.call, []).append(o.value)
        return by_call[max(by_call)][0] if by_call else None

    def flowed_offer(self, want: str, ok: Callable[[Any], bool] = lambda _: True) -> Any:
        """The first numeric offer of the most recent call whose meaning `want` takes, or None."""
        for o in reversed(self.flow.offers):
            if o.kind == "number" and semantics.accepts(want, o.meaning) is True and ok(o.value):
                return next(x for x in self.flow.offers if x.call == o.call and x.kind == "number"
                            and semantics.accepts(want, x.meaning) is True and ok(x.value))  # fmt: skip
        return None

    def chance(self, p: float) -> bool:
        return self.rng.random() < p


# ---------------------------------------------------------------- simulator tables


def _class(name: str) -> type:
    from rods.env.world import _class as load_class

    return load_class(name)


def _literal_in(fn: Any, var: str) -> Any:
    """The literal assigned to local `var` in a function's source (plain or annotated)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == var for t in node.targets
        ):
            return ast.literal_eval(node.value)
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == var
        ):
            return ast.literal_eval(node.value)
    raise LookupError(f"{fn.__qualname__} assigns no literal {var}")


@functools.cache
def company_symbols() -> dict[str, str]:
    return dict(_literal_in(_class("TradingBot").get_symbol_by_name, "symbol_map"))


@functools.cache
def city_airports() -> dict[str, str]:
    return dict(_literal_in(_class("TravelAPI").get_nearest_airport_by_city, "airport_map"))


@functools.cache
def flight_costs() -> dict[tuple[str, str], int]:
    """Base economy fare per (from, to) airport pair, as get_flight_cost prices it."""
    return dict(_literal_in(_class("TravelAPI").get_flight_cost, "base_costs"))


@functools.cache
def airports() -> frozenset[str]:
    return frozenset(_class("TravelAPI")().list_all_airports())


@functools.cache
def bookable_routes() -> tuple[tuple[str, str], ...]:
    """Priced routes whose both ends are airports book_flight accepts."""
    return tuple(r for r in flight_costs() if r[0] in airports() and r[1] in airports())


@functools.cache
def currency_pairs() -> tuple[tuple[str, str], ...]:
    return tuple(_literal_in(_class("TravelAPI").compute_exchange_rate, "exchange_rates"))


@functools.cache
def sectors() -> dict[str, list[str]]:
    return dict(_literal_in(_class("TradingBot").get_available_stocks, "sector_map"))


# Cities the vehicle simulator knows a zipcode for, and zipcode pairs it knows a distance for;
# both are if-chains in bfcl-eval (no literal to read); tests probe them against the simulator.
CITY_ZIPCODES: dict[str, str] = {
    "Rivermist": "83214",
    "Stonebrook": "74532",
    "Maplecrest": "56108",
    "Silverpine": "62947",
    "Shadowridge": "71354",
    "Sunset Valley": "83462",
    "Oakendale": "47329",
    "Willowbend": "52013",
    "Crescent Hollow": "69238",
    "Autumnville": "51479",
    "San Francisco": "94016",
}
ZIPCODE_DISTANCES: tuple[tuple[str, str], ...] = (
    ("83214", "74532"),
    ("56108", "62947"),
    ("71354", "83462"),
    ("47329", "52013"),
    ("69238", "51479"),
    ("94016", "83214"),
    ("62947", "47329"),
    ("94016", "62947"),
    ("74532", "94016"),
)
# Unit pairs of MathAPI's converters (the imperial table holds an expression, so it is listed).
IMPERIAL_PAIRS: tuple[tuple[str, str, str], ...] = (
    ("cm", "in", "centimeters to inches"),
    ("in", "cm", "inches to centimeters"),
    ("m", "ft", "meters to feet"),
    ("ft", "m", "feet to meters"),
    ("m", "yd", "meters to yards"),
    ("yd", "m", "yards to meters"),
    ("km", "miles", "kilometers to miles"),
    ("miles", "km", "miles to kilometers"),
    ("kg", "lb", "kilograms to pounds"),
    ("lb", "kg", "pounds to kilograms"),
    ("celsius", "fahrenheit", "Celsius to Fahrenheit"),
    ("fahrenheit", "celsius", "Fahrenheit to Celsius"),
)
SI_UNITS: dict[str, str] = {
    "km": "kilometers",
    "m": "meters",
    "cm": "centimeters",
    "mm": "millimeters",
    "um": "micrometers",
    "nm": "nanometers",
}
