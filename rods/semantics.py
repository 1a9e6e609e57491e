"""What the values of the BFCL world mean: one declaration per function, and the semantic gate.

The declaration (`DECLARATIONS`): for each function of the 8 BFCL classes whose parameters take, or
whose results give, a value with a meaning beyond "a number" — the *kind* of each parameter and of
each result field. Kinds are strings:
- quantities with their unit or currency: `distance:km`, `fuel:gallon`, `fuel:liter`,
  `temperature:celsius`, `speed:mph`, `money:USD` (any currency code), `price:<SYMBOL>` (a share
  price of that symbol, in USD), `percent`;
- `shares` (a share count), `count` (a count of things: words, lines), `number` (a plain number:
  what arithmetic makes of quantities it does not keep).
A kind may name one of the call's own arguments in braces (`money:{target_currency}`,
`price:{symbol}`): `compute_exchange_rate` yields money in its target currency and takes a value in
its base currency; `get_stock_info` gives the price of the symbol it was asked about. A parameter
kind may end in `:*` (any unit of that quantity: `distance:*`). Result paths: `a.b` (keys),
`a[]` (each item of a list), `[]` (each item of a top-level list). MathAPI's parameters take any
numeric kind; `KEEPS` lists the operations that pass their input's kind on (sum, mean, min, max,
round, abs: their result is the same quantity); every other operation yields `number`. The unit
converters yield the kind of their output unit. The planner, the samplers and the writer of the
procedural synthesizer (graphs/synthesis/procedural) and this module's gate read this one table.

BFCL conventions its human tasks use stay allowed: `estimate_distance` gives km and
`estimate_drive_feasibility_by_mileage` says miles, yet 36 human training seeds feed the one into the
other, so that parameter takes any distance (`distance:*`).

The gate (`semantic_findings(task)`): execute the ground truth in fresh simulators (`rods.env`),
trace every argument value to its source (`rods.signature.trace_arguments`), give every flowed
value the kind of the result field it came from (kinds flow through MathAPI as above), and report
one code per rule broken (`SEMANTIC_CODES`, explained in `CODE_HELP`):
- `semantic_kind_mismatch`: a flowed value fills a parameter of another kind (a distance into
  a gallon converter, USD treated as CAD, a share price as a deposit);
- `semantic_untyped_flow` (a finding, not a rejection): a plain computed number fills a typed
  quantity parameter (the difference of two prices as a budget);
- `semantic_value_before_source`: a user turn states a number that only a ground-truth call of that
  turn or a later one computes (the user could not know it), or its negation;
- `semantic_unidentifiable_reference`: a value flowed from inside a long list result (more than
  `MAX_UNNAMED` entries) that the user's text does not single out (the value, its position, or a
  label of its entry), or a vague list reference ("those 3 figures from before").
Limits: values that are not traced (paraphrased by the user, computed outside a call) carry no
kind and pass; ids are typed by the synthesizer's flow and not checked here; the rules read numbers
and a few reference patterns, not the meaning of free text.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from rods.tasks import Task, ToolCall


@dataclass(frozen=True)
class Declaration:
    """The kinds of one function's parameters and result fields (module docstring)."""

    params: dict[str, str]
    results: dict[str, str]


def _d(params: str = "", results: str = "") -> Declaration:
    def table(spec: str) -> dict[str, str]:
        return dict(pair.split("=", 1) for pair in spec.split())

    return Declaration(table(params), table(results))


_MATH_OPS = (
    "add subtract multiply divide power percentage absolute_value round_number square_root "
    "logarithm mean standard_deviation min_value max_value sum_values"
).split()
# The MathAPI operations whose result is the same quantity as their input (a sum of prices is a
# price, the mean of temperatures a temperature); the rest yield a plain number.
KEEPS: frozenset[str] = frozenset(
    {"sum_values", "mean", "min_value", "max_value", "round_number", "absolute_value"}
)
_MATH_PARAMS = {"a", "b", "number", "numbers", "value", "part", "whole", "base", "exponent"}

DECLARATIONS: dict[str, Declaration] = {
    # ---- TradingBot
    "get_stock_info": _d(results="price=price:{symbol} MA(5)=price:{symbol} MA(20)=price:{symbol} percent_change=percent"),
    "get_order_details": _d(results="price=price:{.symbol} amount=shares"),
    "place_order": _d("price=price:{symbol} amount=shares", "price=price:{symbol} amount=shares"),
    "get_account_info": _d(results="balance=money:USD"),
    "fund_account": _d("amount=money:USD", "new_balance=money:USD"),
    "withdraw_funds": _d("amount=money:USD", "new_balance=money:USD"),
    "notify_price_change": _d("threshold=percent"),
    "filter_stocks_by_price": _d("min_price=price:* max_price=price:*"),
    # ---- TravelAPI
    "get_flight_cost": _d(results="travel_cost_list[]=money:USD"),
    "get_credit_card_balance": _d(results="card_balance=money:USD"),
    "compute_exchange_rate": _d("value=money:{base_currency}", "exchanged_value=money:{target_currency}"),
    "set_budget_limit": _d("budget_limit=money:USD", "budget_limit=money:USD"),
    "purchase_insurance": _d("insurance_cost=money:USD"),
    "retrieve_invoice": _d(results="invoice.travel_cost=money:USD"),
    "register_credit_card": _d(),
    # ---- VehicleControlAPI
    "estimate_distance": _d(results="distance=distance:km"),
    "estimate_drive_feasibility_by_mileage": _d("distance=distance:*"),
    "liter_to_gallon": _d("liter=fuel:liter", "gallon=fuel:gallon"),
    "gallon_to_liter": _d("gallon=fuel:gallon", "liter=fuel:liter"),
    "fillFuelTank": _d("fuelAmount=fuel:gallon", "fuelLevel=fuel:gallon"),
    "get_outside_temperature_from_google": _d(results="outsideTemperature=temperature:celsius"),
    "get_outside_temperature_from_weather_com": _d(results="outsideTemperature=temperature:celsius"),
    "setCruiseControl": _d("speed=speed:mph"),
    # ---- GorillaFileSystem
    "wc": _d(results="count=count"),
    # ---- MathAPI: any numeric kind in; result kind by KEEPS (see result_kinds)
    **{op: _d(" ".join(f"{p}=number" for p in sorted(_MATH_PARAMS)), "result=number") for op in _MATH_OPS},
    "si_unit_conversion": _d("value={unit_in}", "result={unit_out}"),
    "imperial_si_conversion": _d("value={unit_in}", "result={unit_out}"),
}

# What a unit name of MathAPI's converters measures.
_UNIT_KIND = {
    **{u: f"distance:{u}" for u in ("km", "m", "cm", "mm", "um", "nm", "in", "ft", "yd", "miles")},
    "kg": "mass:kg",
    "lb": "mass:lb",
    "celsius": "temperature:celsius",
    "fahrenheit": "temperature:fahrenheit",
}
NUMERIC_PREFIXES = ("distance", "fuel", "temperature", "speed", "money", "price", "percent",
                    "shares", "count", "number", "mass")  # fmt: skip


def unit_kind(unit: str) -> str:
    """What a unit name of MathAPI's converters measures (`km` → `distance:km`); `number` if unknown."""
    return _UNIT_KIND.get(unit.lower(), "number")


def is_numeric_kind(kind: str | None) -> bool:
    return kind is not None and kind.split(":", 1)[0] in NUMERIC_PREFIXES


def _fill(spec: str, args: dict[str, Any], result: Any) -> str | None:
    """`spec` with `{arg}` (an argument of the call) or `{.field}` (a result field) filled."""
    m = re.search(r"\{(\.?)([A-Za-z_]+)\}", spec)
    if m is None:
        return spec
    source = result if m.group(1) else args
    value = source.get(m.group(2)) if isinstance(source, dict) else None
    if value is None:
        return None
    if m.group(2) in ("unit_in", "unit_out"):
        return _UNIT_KIND.get(str(value).lower(), "number")
    return spec[: m.start()] + str(value).upper() + spec[m.end() :]


def param_kind(function: str, param: str, args: dict[str, Any]) -> str | None:
    """The kind parameter `param` of `function` takes in a call with `args` (None: undeclared)."""
    decl = DECLARATIONS.get(function)
    spec = decl.params.get(param) if decl else None
    return _fill(spec, args, None) if spec else None


def _walk(obj: Any, path: str) -> Iterator[tuple[Any, int | None, int]]:
    """(value, list position, list length) at `path` in a parsed result."""
    parts = re.findall(r"[^.\[\]]+(?:\([^)]*\))?|\[\]", path)
    items: list[tuple[Any, int | None, int]] = [(obj, None, 1)]
    for part in parts:
        nxt: list[tuple[Any, int | None, int]] = []
        for value, pos, of in items:
            if part == "[]":
                if isinstance(value, list):
                    nxt += [(v, i, len(value)) for i, v in enumerate(value)]
            elif isinstance(value, dict) and part in value:
                nxt.append((value[part], pos, of))
        items = nxt
    return iter(items)


def _num(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def result_kinds(
    call: ToolCall, result: Any, arg_kinds: dict[str, str | None] | None = None
) -> list[tuple[str, Any, int | None, int]]:
    """(kind, value, list position, list length) of the declared numeric fields of a parsed result.

    `arg_kinds`: the kinds of the call's own arguments where they flowed from earlier results; a
    MathAPI operation in `KEEPS` passes its input's kind on when all inputs agree."""
    decl = DECLARATIONS.get(call.name)
    if decl is None or not isinstance(result, dict) or "error" in result:
        return []
    out = []
    for path, spec in decl.results.items():
        kind = _fill(spec, call.arguments, result)
        if kind is None:
            continue
        if call.name in KEEPS and arg_kinds:
            kept = {k for k in arg_kinds.values() if k is not None}
            if len(kept) == 1:
                kind = kept.pop()
        for value, pos, of in _walk(result, path):
            if _num(value):
                out.append((kind, value, pos, of))
    return out


def accepts(param: str | None, value: str | None) -> bool | None:
    """Does a parameter of kind `param` take a value of kind `value`? True, False, or None when
    the value is a plain computed number filling a typed quantity (a finding, not an error)."""
    if param is None or value is None or param == value:
        return True
    if not is_numeric_kind(param):
        return True  # ids and texts are typed by the synthesizer's flow, not here
    if param == "number":
        return is_numeric_kind(value)
    if value == "number":
        return None
    if param.endswith(":*"):
        return value.split(":", 1)[0] == param[:-2]
    return False


def flow_problem(param: str | None, value: str | None) -> str | None:
    """The code of a flow of a `value`-kind value into a `param`-kind parameter, or None."""
    ok = accepts(param, value)
    if ok is None:
        return "semantic_untyped_flow"
    return None if ok else "semantic_kind_mismatch"


# ---------------------------------------------------------------- the gate

SEMANTIC_CODES: tuple[str, ...] = (
    "semantic_kind_mismatch",
    "semantic_untyped_flow",
    "semantic_value_before_source",
    "semantic_unidentifiable_reference",
)
# Findings counted but not rejected (literal but odd: a computed number as a budget).
SOFT_CODES: frozenset[str] = frozenset({"semantic_untyped_flow"})
CODE_HELP: dict[str, tuple[str, str]] = {
    "semantic_kind_mismatch": (
        "a value flows from an earlier result into a parameter of another kind (a distance into a "
        "gallon converter, a USD amount converted as CAD, a share price deposited as money)",
        "flow only values whose kind, unit and currency match the parameter (rods.semantics."
        "DECLARATIONS); convert explicitly with a call that yields the new kind",
    ),
    "semantic_untyped_flow": (
        "a plain computed number (a difference, a product) fills a parameter with a unit or "
        "currency; literal, but a careful annotator would not write it (counted, not rejected)",
        "feed the parameter a value of its own kind, or let the user state the number",
    ),
    "semantic_value_before_source": (
        "a user turn states a number that only a ground-truth call of that turn or a later one "
        "computes (or its negation): the user could not know it",
        "refer to the value by what it is ('the fare you were quoted') instead of stating it",
    ),
    "semantic_unidentifiable_reference": (
        "the text refers to a value the reader cannot single out: an entry deep in a long list "
        "result with no position or label, or a vague 'those N figures from before'",
        "name the entry by position or label, use the first entry, or say what the list holds "
        "and where it came from",
    ),
}
MAX_UNNAMED = 5  # a list result longer than this needs its entry named (long-context listings)
_MIN_SIGNIFICANT = 4  # numbers a user could not guess by chance (`1493.42`, not `12`)
_VAGUE_RE = re.compile(r"(?i)\bthose \d+ [a-z]+ (?:from before|you got earlier)\b")
_ORDINALS = ("first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth"
             ).split()  # fmt: skip


@dataclass(frozen=True)
class Finding:
    """One broken rule: its code, the call (flattened index) and a short detail."""

    code: str
    call: int
    detail: str
    turn: int = -1  # the user turn the rule reads (the consuming call's turn), -1: none
    position: int | None = None  # an unidentifiable list entry: its index and the list's length
    of: int = 1


def _significant(x: float) -> int:
    """Significant digits, trailing zeros of a whole number not counted (2000 has 1)."""
    digits = repr(abs(float(x))).removesuffix(".0").replace(".", "").strip("0")
    return len(digits) if "e" not in digits else 2


def _match(a: Any, b: Any) -> bool:
    if _num(a) and _num(b):
        if math.isclose(float(a), float(b), rel_tol=0, abs_tol=1e-9):
            return True
        text = repr(float(a))
        decimals = len(text.split(".")[1].rstrip("0")) if "." in text and "e" not in text else 0
        return decimals > 0 and math.isclose(round(float(b), decimals), float(a), abs_tol=1e-9)
    return False


def _parse(result: str) -> Any:
    try:
        return json.loads(result)
    except (json.JSONDecodeError, TypeError, RecursionError):
        return None


def _named(text: str, value: Any, pos: int, of: int, entry: Any, items: list[Any]) -> bool:
    """Does `text` single out entry `pos` of a list of `of` (its value, position, or a label)?"""
    lowered = text.lower()
    if pos == 0 or (pos == of - 1 and "last" in lowered):
        return True
    n = pos + 1
    cues = [f"#{n}", f"number {n}", f"entry {n}", f"item {n}", f"{n}th", f"{n}st", f"{n}nd", f"{n}rd"]
    if n <= len(_ORDINALS):
        cues.append(_ORDINALS[n - 1])
    if any(re.search(r"(?<![a-z0-9])" + re.escape(c) + r"(?![a-z0-9])", lowered) for c in cues):
        return True
    nums = [v for v in items if _num(v)]
    if nums and _num(value):
        if value == min(nums) and re.search(r"cheapest|lowest|smallest|least", lowered):
            return True
        if value == max(nums) and re.search(r"highest|largest|most|biggest|priciest", lowered):
            return True
    return bool(re.search(r"(?<![0-9.])" + re.escape(f"{value:g}" if _num(value) else str(value)), lowered))


def semantic_findings(task: Task) -> list[Finding]:
    """Every rule the task's ground truth and text break (module docstring); [] passes.

    Executes the ground truth in fresh simulators (`rods.env.World`); never raises for a bad call
    (such a call has no arguments to trace and gives no kinds)."""
    from rods.env.world import World
    from rods.signature import execute_calls, trace_arguments, value_haystack

    world = World.load(task)
    state = value_haystack([], world.public_state())
    calls = execute_calls(task, world)
    trace = trace_arguments(task, calls, state)
    parsed = [_parse(c.result) for c in calls]
    user = [" ".join(m.content for m in msgs if m.role == "user") for msgs in task.question]
    findings: list[Finding] = []
    offered: list[list[tuple[str, Any, int | None, int]]] = []
    by_call: dict[int, list[Any]] = {}
    for p in trace:
        by_call.setdefault(p.call, []).append(p)
    for j, executed in enumerate(calls):
        arg_kinds: dict[str, str | None] = {}
        call = executed.call
        for p in by_call.get(j, []):
            if p.source != "result" or p.producer is None or call is None:
                continue
            kind, pos, of = _source_kind(offered[p.producer], p.value)
            if kind is None:
                continue
            want = param_kind(call.name, p.argument, call.arguments)
            code = flow_problem(want, kind) if is_numeric_kind(kind) else None
            if code is not None:
                findings.append(Finding(code, j, f"{call.name}({p.argument}) takes {want}, got {kind}"))
            if pos is not None and of > MAX_UNNAMED:
                items = [v for k, v, q, _ in offered[p.producer] if q is not None and k == kind]
                entry = parsed[p.producer]
                said = " ".join(user[: executed.turn + 1])
                if not _named(said, p.value, pos, of, entry, items):
                    findings.append(Finding("semantic_unidentifiable_reference", j,
                                            f"{call.name}({p.argument}) takes entry {pos + 1} of {of}",
                                            executed.turn, pos, of))  # fmt: skip
            prev = arg_kinds.get(p.argument, kind)
            arg_kinds[p.argument] = kind if prev == kind else "number"
        offered.append(result_kinds(call, parsed[j], arg_kinds) if call is not None else [])
    findings += _stated_early(calls, offered, user, state)
    for u, text in enumerate(user):
        if _VAGUE_RE.search(text):
            findings.append(Finding("semantic_unidentifiable_reference", -1, f"turn {u}: vague list reference", u))
    return findings


def _source_kind(offers: Sequence[tuple[str, Any, int | None, int]], value: Any) -> tuple[str | None, int | None, int]:
    for kind, v, pos, of in offers:
        if _match(value, v):
            return kind, pos, of
    return None, None, 1


def _stated_early(calls: Sequence[Any], offered: Sequence[Sequence[tuple[str, Any, int | None, int]]],
                  user: Sequence[str], state: Any) -> list[Finding]:  # fmt: skip
    """Numbers a user turn states that only a call of that turn or a later one computes (not
    numbers of the initial state, nor inputs of calls up to the producer: converting 2225 USD
    to GBP and back yields 2225 again, which the user did know)."""
    from rods.signature import _numbers_in, argument_values

    out: list[Finding] = []
    known: list[float] = []  # numbers of results before each turn
    said_before: set[float] = set()
    turn_of = [c.turn for c in calls]
    inputs: list[list[float]] = []  # numeric arguments of calls 0..j: what the user put in
    for c in calls:
        args = [a for _, a in argument_values(c.call.arguments)] if c.call is not None else []
        inputs.append([*(inputs[-1] if inputs else []), *(float(a) for a in args if _num(a))])
    for u, text in enumerate(user):
        stated = {x for x in _numbers_in(text) if _significant(x) >= _MIN_SIGNIFICANT}
        for j, offers in enumerate(offered):
            if turn_of[j] < u:
                continue
            call = calls[j].call
            own = [a for _, a in argument_values(call.arguments)] if call is not None else []
            for _kind, v, _, _ in offers:
                if any(_match(v, a) for a in own if _num(a)):
                    continue  # an echo of the call's own argument: the user stated it first
                for x in stated - said_before:
                    if state.has(x) or any(_match(x, a) for a in inputs[j]):
                        continue  # in the world already, or an input the user gave (a round trip)
                    hit = _match(x, v) or _match(-x, v)
                    if hit and not any(_match(x, k) or _match(-x, k) for k in known):
                        out.append(Finding("semantic_value_before_source", j, f"turn {u} states {x:g}, a result of {calls[j].call.name if calls[j].call else '?'}"))  # fmt: skip
        said_before |= stated
        known += [v for j, offers in enumerate(offered) if turn_of[j] == u for _, v, _, _ in offers]
    return out


def semantic_codes(task: Task) -> list[str]:
    """The distinct codes of `semantic_findings`, sorted (soft ones included)."""
    return sorted({f.code for f in semantic_findings(task)})


def semantic_rejections(task: Task) -> list[str]:
    """The codes that reject the task (every semantic code but the soft ones)."""
    return [c for c in semantic_codes(task) if c not in SOFT_CODES]
