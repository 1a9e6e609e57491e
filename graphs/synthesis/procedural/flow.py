"""What earlier results offer later calls: typed values ("kinds") read off each executed call.

A *kind* names a role a value can play in a later argument: `ticket_id`, `symbol`, `user_id`,
`number`, `text`, … `extract(call, result)` reads the kinds one call's result offers (parsed
JSON; non-JSON results offer nothing), each with its position when the result is a list, so a
user turn can say "the second ticket in that list". `Flow` holds them for a whole variant, most
recent first: the argument samplers prefer flowed values (that is what makes data-flow edges),
and the query writer refers to a flowed value by where it came from instead of naming it.

Every numeric offer also carries its meaning (`Offer.meaning`, read from `rods.semantics`:
`money:USD`, `distance:km`, `price:NVDA`, passed on through MathAPI where the operation keeps it),
so a typed parameter takes only a value of its own kind (`Scope.flowed_into`).

Limits: only the result shapes of bfcl-eval's simulators are known here; a value a call merely
echoes from its own arguments is not offered (as in `rods.signature`, it is not a source).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

from rods import semantics
from rods.tasks import ToolCall

MAX_TEXT = 160  # flowed text stays well under the 200-character argument limit


@dataclass(frozen=True)
class Offer:
    """One value an earlier result offers: which call, which kind, the value, list position."""

    call: int  # index into the variant's calls, in order
    kind: str
    value: Any
    position: int | None = None  # index within a list result, when it came from one
    of: int = 1  # length of that list
    meaning: str | None = None  # a number's kind in `rods.semantics` (`money:USD`, `distance:km`)


def _parse(result: str) -> Any:
    try:
        return json.loads(result)
    except (json.JSONDecodeError, TypeError):
        return None


def _num(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _short_text(x: Any) -> str | None:
    """A piece of text fit to be passed on: a first line/sentence, trimmed, or None."""
    if not isinstance(x, str):
        return None
    line = next((part.strip() for part in x.splitlines() if part.strip()), "")
    if len(line) > MAX_TEXT:
        cut = line[:MAX_TEXT]
        line = cut[: cut.rfind(" ")] if " " in cut else cut
    return line if len(line) >= 3 else None


def _listed(kind: str, items: list[Any]) -> list[tuple[str, Any, int, int]]:
    return [(kind, v, i, len(items)) for i, v in enumerate(items)]


def _offers(name: str, obj: Any) -> list[tuple[str, Any, int | None, int]]:
    """(kind, value, position, list length) offered by one parsed result."""
    out: list[tuple[str, Any, int | None, int]] = []
    d = obj if isinstance(obj, dict) else {}
    if "error" in d:
        return out

    def one(kind: str, value: Any) -> None:
        if value is not None and value != "":
            out.append((kind, value, None, 1))

    # ---- TradingBot
    if name == "get_symbol_by_name" and d.get("symbol") not in (None, "Stock not found"):
        one("symbol", d["symbol"])
    elif name == "get_available_stocks":
        out += _listed("symbol", d.get("stock_list", []))
    elif name in ("get_watchlist", "add_to_watchlist"):
        items = d.get("watchlist", obj if isinstance(obj, list) else [])
        out += _listed("symbol", [s for s in items if isinstance(s, str)])
    elif name == "filter_stocks_by_price":
        out += _listed("symbol", d.get("filtered_stocks", []))
    elif name == "get_stock_info":
        one("price", d.get("price"))
    elif name == "place_order":
        one("order_id", d.get("order_id"))
    elif name == "get_order_history":
        out += _listed("order_id", d.get("history", []))
    elif name == "get_order_details":
        one("symbol", d.get("symbol"))
        one("price", d.get("price"))
    elif name == "get_account_info":
        one("number", d.get("balance"))
    elif name in ("fund_account", "withdraw_funds"):
        one("number", d.get("new_balance"))
    # ---- TicketAPI
    elif name == "create_ticket":
        one("ticket_id", d.get("id"))
    elif name == "get_user_tickets" and isinstance(obj, list):
        out += _listed("ticket_id", [t.get("id") for t in obj if isinstance(t, dict)])
    elif name == "get_ticket":
        one("text", _short_text(d.get("description")) or _short_text(d.get("title")))
    # ---- MessageAPI
    elif name in ("get_user_id", "add_contact"):
        one("user_id", d.get("user_id"))
    elif name == "list_users":
        out += _listed("user_name", d.get("user_list", []))
    elif name == "search_messages":
        results = d.get("results", [])
        out += _listed("user_id", [r.get("receiver_id") for r in results])
        out += _listed("text", [_short_text(r.get("message")) for r in results])
    elif name == "view_messages_sent":
        msgs = d.get("messages", {})
        out += _listed("user_id", list(msgs))
    # ---- TwitterAPI
    elif name == "post_tweet":
        one("tweet_id", d.get("id"))
    elif name in ("get_user_tweets", "search_tweets") and isinstance(obj, list):
        tweets = [t for t in obj if isinstance(t, dict)]
        out += _listed("tweet_id", [t.get("id") for t in tweets])
        out += _listed("text", [_short_text(t.get("content")) for t in tweets])
    elif name == "get_tweet":
        one("text", _short_text(d.get("content")))
        one("username", d.get("username"))
    elif name == "list_all_following":
        out += _listed("username", d.get("following_list", []))
    elif name == "get_tweet_comments" and isinstance(obj, list):
        out += _listed("text", [_short_text(c.get("content")) for c in obj if isinstance(c, dict)])
    # ---- TravelAPI
    elif name == "authenticate_travel":
        one("access_token", d.get("access_token"))
    elif name == "get_all_credit_cards":
        out += _listed("card_id", list(d.get("credit_card_list", {})))
    elif name == "register_credit_card":
        one("card_id", d.get("card_id"))
    elif name == "book_flight":
        one("booking_id", d.get("booking_id"))
    elif name == "get_booking_history":
        out += _listed("booking_id", list(d.get("booking_history", {})))
    elif name == "get_nearest_airport_by_city" and d.get("nearest_airport") != "Unknown":
        one("airport", d.get("nearest_airport"))
    elif name == "get_flight_cost":
        costs = d.get("travel_cost_list", [])
        if len(costs) == 1:
            one("number", costs[0])
    elif name == "get_credit_card_balance":
        one("number", d.get("card_balance"))
    elif name == "compute_exchange_rate":
        one("number", d.get("exchanged_value"))
    elif name == "purchase_insurance":
        one("insurance_id", d.get("insurance_id"))
    elif name == "retrieve_invoice":
        one("number", (d.get("invoice") or {}).get("travel_cost"))
    # ---- VehicleControlAPI
    elif name == "get_zipcode_based_on_city" and d.get("zipcode") != "00000":
        one("zipcode", d.get("zipcode"))
    elif name == "estimate_distance":
        one("distance", d.get("distance"))
    elif name == "liter_to_gallon":
        one("gallon", d.get("gallon"))
    elif name == "gallon_to_liter":
        one("number", d.get("liter"))
    elif name == "find_nearest_tire_shop":
        one("text", d.get("shopLocation"))
    elif name == "get_outside_temperature_from_google":
        one("number", d.get("outsideTemperature"))
    # ---- GorillaFileSystem
    elif name in ("cat", "tail", "sort"):
        key = {"cat": "file_content", "tail": "last_lines", "sort": "sorted_content"}[name]
        one("text", _short_text(d.get(key)))
    elif name == "grep":
        out += _listed("text", [_short_text(x) for x in d.get("matching_lines", [])])
    elif name == "wc":
        one("number", d.get("count"))
    elif name == "du":
        one("text", d.get("disk_usage"))
    # ---- MathAPI: every result is a number
    elif "result" in d and _num(d["result"]):
        one("number", d["result"])
    # zero is no value to carry over: it recurs everywhere and reads ambiguously ("that count")
    return [o for o in out if o[1] is not None and o[1] != "" and not (_num(o[1]) and o[1] == 0)]


@functools.lru_cache(maxsize=1024)
def _result_offers(name: str, result: str) -> tuple[tuple[str, Any, int | None, int, str], ...]:
    """(kind, value, position, list length, value as canonical JSON) one result text offers.

    A pure function of the call's name and result text, memoised per process: the planner and
    the samplers rebuild a `Flow` over the same earlier calls hundreds of times per variant
    (every weighting, every argument draw), and parsing the same results again was most of a
    procedural run's CPU. Offered values are scalars (ids, names, numbers, short texts) and are
    never mutated, so sharing them between flows is safe. Bounded: a run sees a few hundred
    distinct results.
    """
    obj = _parse(result)
    if obj is None:
        return ()
    return tuple(
        (kind, value, position, of, json.dumps(value, sort_keys=True, default=str))
        for kind, value, position, of in _offers(name, obj)
    )


@functools.lru_cache(maxsize=1024)
def _meanings(
    name: str, arguments: str, result: str, arg_kinds: tuple[tuple[str, str | None], ...]
) -> tuple[tuple[str, Any, int | None, int], ...]:
    """`rods.semantics.result_kinds` of one result, memoised like `_result_offers`."""
    call = ToolCall(name=name, arguments=json.loads(arguments))
    return tuple(semantics.result_kinds(call, _parse(result), dict(arg_kinds)))


def extract(
    index: int, call: ToolCall, result: str, arg_kinds: dict[str, str | None] | None = None
) -> list[Offer]:
    """The offers of one executed call (index = its position in the variant); numbers carry
    their meaning (`arg_kinds`: the kinds of the call's own flowed arguments, which MathAPI
    passes on where the operation keeps them)."""
    offered = _result_offers(call.name, result)
    if not offered:
        return []
    own = {json.dumps(v, sort_keys=True, default=str) for v in call.arguments.values()}
    meanings = _meanings(
        call.name,
        json.dumps(call.arguments, sort_keys=True, default=str),
        result,
        tuple(sorted((arg_kinds or {}).items())),
    ) if call.name in semantics.DECLARATIONS and any(_num(v) for _, v, _, _, _ in offered) else ()
    offers = []
    for kind, value, position, of, key in offered:
        if key in own:
            continue  # an echo of the call's own argument is not a source
        meaning = None
        if _num(value):
            meaning = next(
                (m for m, v, p, _ in meanings if p == position and _same(v, value)), "number"
            )
        if _num(value) and kind in ("price", "distance", "gallon"):
            offers.append(Offer(index, "number", value, position, of, meaning))
        offers.append(Offer(index, kind, value, position, of, meaning))
    return offers


class Flow:
    """All offers of a variant's earlier calls, queried most recent first."""

    def __init__(self, earlier: list[tuple[ToolCall, str]]):
        self.calls: list[ToolCall] = []
        self.offers: list[Offer] = []
        for call, result in earlier:
            self.add(call, result)

    def add(self, call: ToolCall, result: str) -> None:
        """One more executed call, after all the earlier ones."""
        kinds = self.arg_kinds(call) if call.name in semantics.KEEPS else None  # only they pass kinds on
        self.offers.extend(extract(len(self.calls), call, result, kinds))
        self.calls.append(call)

    def arg_kinds(self, call: ToolCall) -> dict[str, str | None]:
        """The meaning of each numeric argument of `call` that an earlier result offered (a
        list argument: its items' common meaning, else `number`)."""
        out: dict[str, str | None] = {}
        for name, value in call.arguments.items():
            items = value if isinstance(value, list) else [value]
            kinds = {
                o.meaning
                for v in items
                if _num(v) and (o := self.source(v, ("number",))) is not None
            }
            if kinds:
                out[name] = kinds.pop() if len(kinds) == 1 else "number"
        return out

    def copy(self) -> Flow:
        """An independent flow with the same calls and offers (offers are immutable)."""
        out = Flow([])
        out.calls = list(self.calls)
        out.offers = list(self.offers)
        return out

    def values(self, kind: str) -> list[Any]:
        """Distinct values of a kind, most recent call first (list order kept within a call)."""
        seen: list[Any] = []
        by_call: dict[int, list[Any]] = {}
        for o in self.offers:
            if o.kind == kind:
                by_call.setdefault(o.call, []).append(o.value)
        for i in sorted(by_call, reverse=True):
            for v in by_call[i]:
                if v not in seen:
                    seen.append(v)
        return seen

    def source(self, value: Any, kinds: tuple[str, ...] = ()) -> Offer | None:
        """The latest offer of this value (of one of `kinds`, if given), or None."""
        for o in reversed(self.offers):
            if (not kinds or o.kind in kinds) and _same(o.value, value):
                return o
        return None


def _same(a: Any, b: Any) -> bool:
    if _num(a) and _num(b):
        return abs(float(a) - float(b)) < 1e-9
    return type(a) is type(b) and a == b
