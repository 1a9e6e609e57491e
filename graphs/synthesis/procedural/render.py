"""How a call's argument values read in a user turn: named outright, or by where they came from.

A value the user must supply is named ("the folder 'temp'", "priority 4"). A value an earlier
result offered (`flow.Flow`) is referred to by its source instead ("the ticket you just
created", "the second stock on that list", "Nvidia's stock", "that distance"), so the model has
to carry it over itself; this is what gives the variant its data-flow edges, and the planner
predicts exactly these edges (`planner.flow_edges`).
"""

from __future__ import annotations

import random
from typing import Any

from graphs.synthesis.procedural import voice
from graphs.synthesis.procedural.flow import Flow, Offer
from rods.tasks import ToolCall

_NTH = (
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
)

# What a flowed value is called, by the function whose result offered it and the value's kind.
# `{nth}` is its position in a list result; `{arg:NAME}` is an argument of the producing call.
_SOURCE: dict[tuple[str, str], str] = {
    ("create_ticket", "ticket_id"): "the ticket you just opened",
    ("get_user_tickets", "ticket_id"): "the {nth} ticket in my list",
    ("place_order", "order_id"): "the order you just placed",
    ("get_order_history", "order_id"): "the {nth} order in my history",
    ("get_symbol_by_name", "symbol"): "{arg:name}",
    ("get_available_stocks", "symbol"): "the {nth} company in that sector list",
    ("get_watchlist", "symbol"): "the {nth} entry on my watchlist",
    ("add_to_watchlist", "symbol"): "the {nth} entry on my watchlist",
    ("filter_stocks_by_price", "symbol"): "the {nth} stock that made the cut",
    ("get_order_details", "symbol"): "the company of that order",
    ("get_stock_info", "price"): "its current price",
    ("get_order_details", "price"): "that order's price",
    ("get_user_id", "user_id"): "{arg:user}",
    ("add_contact", "user_id"): "{arg:user_name}",
    ("list_users", "user_name"): "the {nth} person in the workspace list",
    ("search_messages", "user_id"): "the recipient of the {nth} message found",
    ("view_messages_sent", "user_id"): "the {nth} person I have written to",
    ("post_tweet", "tweet_id"): "the post you just published",
    ("get_user_tweets", "tweet_id"): "the {nth} of those posts",
    ("search_tweets", "tweet_id"): "the {nth} post in those results",
    ("get_tweet", "username"): "the author of that post",
    ("list_all_following", "username"): "the {nth} account I follow",
    ("authenticate_travel", "access_token"): "the session you just opened",
    ("get_all_credit_cards", "card_id"): "the {nth} card on file",
    ("register_credit_card", "card_id"): "the card you just registered",
    ("book_flight", "booking_id"): "the flight you just booked",
    ("get_booking_history", "booking_id"): "the {nth} booking in my history",
    ("get_nearest_airport_by_city", "airport"): "the airport nearest {arg:location}",
    ("get_zipcode_based_on_city", "zipcode"): "{arg:city}",
    ("purchase_insurance", "insurance_id"): "the insurance you just bought",
}
_NUMBER_SOURCE: dict[str, str] = {
    "get_stock_info": "that share price",
    "get_order_details": "that order's price",
    "get_account_info": "my account balance",
    "fund_account": "my new balance",
    "withdraw_funds": "my new balance",
    "get_flight_cost": "that fare",
    "get_credit_card_balance": "that card balance",
    "compute_exchange_rate": "the converted amount",
    "retrieve_invoice": "the invoice total",
    "gallon_to_liter": "that figure in liters",
    "liter_to_gallon": "that figure in gallons",
    "estimate_distance": "that distance",
    "get_outside_temperature_from_google": "the outside temperature",
    "wc": "that count",
    "add": "that sum",
    "subtract": "that difference",
    "multiply": "that product",
    "divide": "that quotient",
    "power": "that result",
    "percentage": "that share",
    "absolute_value": "that magnitude",
    "round_number": "the rounded figure",
    "square_root": "that root",
    "logarithm": "that log result",
    "mean": "that average",
    "standard_deviation": "that spread",
    "min_value": "that smallest figure",
    "max_value": "that largest figure",
    "sum_values": "that total",
    "si_unit_conversion": "the converted figure",
    "imperial_si_conversion": "the converted figure",
}
_TEXT_SOURCE: dict[str, str] = {
    "cat": "the first line of that file",
    "tail": "the first of those last lines",
    "sort": "the first line of the sorted text",
    "grep": "the {nth} matching line",
    "du": "the disk usage you just measured",
    "get_ticket": "that ticket's description",
    "search_messages": "the {nth} message found",
    "get_user_tweets": "the text of the {nth} post",
    "search_tweets": "the text of the {nth} post found",
    "get_tweet": "that post's text",
    "get_tweet_comments": "the {nth} reply on it",
    "find_nearest_tire_shop": "the tire shop's address",
}


def _fmt_number(x: Any) -> str:
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x)


def direct(value: Any) -> str:
    """A value named outright."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return _fmt_number(value)
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, list | tuple):
        items = [direct(v) for v in value]
        if not items:
            return "nothing"
        return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
    return str(value)


class Args:
    """One call's arguments as they read in the user's turn."""

    def __init__(self, call: ToolCall, flow: Flow, rng: random.Random):
        self.call = call
        self.flow = flow
        self.rng = rng

    def has(self, name: str) -> bool:
        value = self.call.arguments.get(name)
        return value is not None and value != [] and value != {}

    def raw(self, name: str) -> Any:
        return self.call.arguments.get(name)

    def source(self, name: str) -> Offer | None:
        value = self.raw(name)
        if value is None or isinstance(value, bool | list | dict):
            return None
        return self.flow.source(value)

    def flowed(self, name: str) -> bool:
        value = self.raw(name)
        if isinstance(value, list):
            return bool(value) and all(self.flow.source(v) is not None for v in value)
        return self.source(name) is not None

    def v(self, name: str) -> str:
        """The value of `name`: named, or described by its source when an earlier result gave it."""
        value = self.raw(name)
        if isinstance(value, list):
            if self.flowed(name):
                return self._listed(value)
            return direct(value)
        offer = self.source(name)
        return direct(value) if offer is None else voice.source(describe(offer, self.flow), self.rng)

    def _listed(self, value: list[Any]) -> str:
        """A list of flowed values, each named by what it is and where it came from ("the
        distance you just got and the outside temperature"); named outright when two items would
        read alike (never "those 3 figures from before": the reader could not tell which)."""
        offers = [self.flow.source(v) for v in value]
        if any(o is None for o in offers):
            return direct(value)
        descs = [describe(o, self.flow) for o in offers if o is not None]
        for d in set(descs):  # two results that read alike: say which, in the order they came
            same = sorted((o.call, i) for i, (o, x) in enumerate(zip(offers, descs, strict=True)) if x == d and o)
            if len(same) > 1:
                pair = ("the earlier one", "the later one")
                for rank, (_, i) in enumerate(same):
                    which = pair[rank] if len(same) == 2 else f"the {_NTH[min(rank, len(_NTH) - 1)]} of them"
                    descs[i] = f"{d} ({which})"
        return descs[0] if len(descs) == 1 else ", ".join(descs[:-1]) + " and " + descs[-1]

    def w(self, name: str) -> str:
        """Like `v`, but a named string without quotes (people, places, companies)."""
        value = self.raw(name)
        if isinstance(value, str) and self.source(name) is None:
            return value
        return self.v(name)

    def date(self, name: str) -> str:
        """A date the user supplies, as people write it (`voice.date`); a flowed one by source."""
        value = self.raw(name)
        if isinstance(value, str) and self.source(name) is None:
            return voice.date(value, self.rng)
        return self.v(name)

    def n(self, name: str) -> str:
        """A number named outright (counts, positions: never worth a reference)."""
        return _fmt_number(self.raw(name))


def describe(offer: Offer, flow: Flow) -> str:
    producer = flow.calls[offer.call]
    key = (producer.name, offer.kind)
    if key in _SOURCE:
        text = _SOURCE[key]
    elif offer.kind in ("number", "price", "distance", "gallon"):
        text = _NUMBER_SOURCE.get(producer.name, "the figure you just got")
    elif offer.kind == "text":
        text = _TEXT_SOURCE.get(producer.name, "the text you just saw")
    else:
        text = "the value you just got"
    if "{nth}" in text:
        pos = offer.position or 0
        nth = (
            "last"
            if offer.of > 1 and pos == offer.of - 1
            else (_NTH[pos] if pos < len(_NTH) else f"#{pos + 1}")
        )
        text = text.replace("{nth}", nth)
    while "{arg:" in text:
        start = text.index("{arg:")
        end = text.index("}", start)
        arg = producer.arguments.get(text[start + 5 : end], "it")
        text = text[:start] + str(arg) + text[end + 1 :]
    return text
