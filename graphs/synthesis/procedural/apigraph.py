"""Per-class API graphs: which result feeds which argument, and which state a function needs.

Two relations, read off bfcl-eval's simulators:
- data flow: `PRODUCES[f]` are the kinds of value f's result offers (see `flow.py`), `CONSUMES[f]`
  the kinds its arguments take from earlier results. f → g is an edge when f produces what g
  consumes (`get_symbol_by_name → get_stock_info`, `create_ticket → close_ticket`,
  `get_user_id → send_message`, `get_zipcode_based_on_city → estimate_distance`). `number` and
  `text` cross classes: a distance feeds a logarithm, a file's line feeds a tweet. What a number
  *means* (unit, currency, a share price of a symbol) is declared once in `rods.semantics`;
  `consumes_offered` / `takes_number` read it, so the planner plans no distance into a gallon
  converter, and the samplers (`Scope.flowed_into`) and the critique's gate read the same table.
- state: `NEEDS[f]` names gates (logged in, a ticket exists, doors locked and brake pressed, a
  file in the current directory, …); each gate has a check on the live world and, where one
  exists, the function that opens it (`ENABLER`). The planner puts enablers before a function
  whose gate is shut (login before posting, create before close, lock + brake before start).
  Gates without an enabler (market closed, a full tank) make the function unusable in that
  state; the graph's config patches can still open them.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from typing import Any

from bfcl_eval.eval_checker.multi_turn_eval.func_source_code.gorilla_file_system import (
    Directory,
    File,
)

from rods import semantics
from rods.env.world import World

PRODUCES: dict[str, frozenset[str]] = {
    k: frozenset(v.split())
    for k, v in {
        "get_symbol_by_name": "symbol",
        "get_available_stocks": "symbol",
        "get_watchlist": "symbol",
        "add_to_watchlist": "symbol",
        "filter_stocks_by_price": "symbol",
        "get_stock_info": "price number",
        "place_order": "order_id",
        "get_order_history": "order_id",
        "get_order_details": "symbol price number",
        "get_account_info": "number",
        "fund_account": "number",
        "withdraw_funds": "number",
        "create_ticket": "ticket_id",
        "get_user_tickets": "ticket_id",
        "get_ticket": "text",
        "get_user_id": "user_id",
        "add_contact": "user_id",
        "list_users": "user_name",
        "search_messages": "user_id text",
        "view_messages_sent": "user_id",
        "post_tweet": "tweet_id",
        "get_user_tweets": "tweet_id text",
        "search_tweets": "tweet_id text",
        "get_tweet": "text username",
        "list_all_following": "username",
        "get_tweet_comments": "text",
        "authenticate_travel": "access_token",
        "get_all_credit_cards": "card_id",
        "register_credit_card": "card_id",
        "book_flight": "booking_id",
        "get_booking_history": "booking_id",
        "get_nearest_airport_by_city": "airport",
        "get_flight_cost": "number",
        "get_credit_card_balance": "number",
        "compute_exchange_rate": "number",
        "purchase_insurance": "insurance_id",
        "retrieve_invoice": "number",
        "get_zipcode_based_on_city": "zipcode",
        "estimate_distance": "distance number",
        "liter_to_gallon": "gallon number",
        "gallon_to_liter": "number",
        "find_nearest_tire_shop": "text",
        "get_outside_temperature_from_google": "number",
        "cat": "text",
        "tail": "text",
        "sort": "text",
        "grep": "text",
        "wc": "number",
        "du": "text",
        **dict.fromkeys(
            (
                "add",
                "subtract",
                "multiply",
                "divide",
                "power",
                "percentage",
                "absolute_value",
                "round_number",
                "square_root",
                "logarithm",
                "mean",
                "standard_deviation",
                "min_value",
                "max_value",
                "sum_values",
                "si_unit_conversion",
                "imperial_si_conversion",
            ),
            "number",
        ),
    }.items()
}
_TOKEN = "access_token"
CONSUMES: dict[str, frozenset[str]] = {
    k: frozenset(v.split())
    for k, v in {
        "get_stock_info": "symbol",
        "add_to_watchlist": "symbol",
        "remove_stock_from_watchlist": "symbol",
        "filter_stocks_by_price": "symbol",
        "notify_price_change": "symbol",
        "place_order": "symbol price",
        "get_order_details": "order_id",
        "cancel_order": "order_id",
        "fund_account": "number",
        "get_ticket": "ticket_id",
        "close_ticket": "ticket_id",
        "resolve_ticket": "ticket_id",
        "edit_ticket": "ticket_id",
        "create_ticket": "text",
        "get_user_id": "user_name",
        "send_message": "user_id text",
        "delete_message": "user_id",
        "get_tweet": "tweet_id",
        "comment": "tweet_id",
        "mention": "tweet_id",
        "retweet": "tweet_id",
        "get_tweet_comments": "tweet_id",
        "follow_user": "username",
        "unfollow_user": "username",
        "get_user_tweets": "username",
        "get_user_stats": "username",
        "post_tweet": "text",
        "get_flight_cost": "airport",
        "book_flight": f"airport card_id {_TOKEN}",
        "get_credit_card_balance": f"card_id {_TOKEN}",
        "register_credit_card": _TOKEN,
        "get_booking_history": _TOKEN,
        "set_budget_limit": f"number {_TOKEN}",
        "retrieve_invoice": f"booking_id {_TOKEN}",
        "cancel_booking": f"booking_id {_TOKEN}",
        "purchase_insurance": f"booking_id card_id {_TOKEN}",
        "contact_customer_support": "booking_id",
        "compute_exchange_rate": "number",
        "estimate_distance": "zipcode",
        "estimate_drive_feasibility_by_mileage": "distance",
        "fillFuelTank": "gallon",
        "display_log": "text",
        "set_navigation": "text",
        "gallon_to_liter": "number",
        "echo": "text",
        **dict.fromkeys(
            (
                "add",
                "subtract",
                "multiply",
                "divide",
                "percentage",
                "absolute_value",
                "round_number",
                "square_root",
                "logarithm",
                "mean",
                "standard_deviation",
                "min_value",
                "max_value",
                "sum_values",
                "si_unit_conversion",
                "imperial_si_conversion",
            ),
            "number",
        ),
    }.items()
}


# ---------------------------------------------------------------- gates


def _fs_cwd(w: World) -> Directory:
    return w.instances["GorillaFileSystem"]._current_dir


def _files_here(w: World, n: int = 1) -> bool:
    return (
        sum(isinstance(i, File) and not k.startswith(".") for k, i in _fs_cwd(w).contents.items())
        >= n
    )


def _travel_token(w: World) -> bool:
    api = w.instances["TravelAPI"]
    return api.access_token is not None and api.token_expires_in not in (0, None)


def _complete_booking(w: World) -> bool:
    api = w.instances["TravelAPI"]
    keys = (
        "card_id",
        "travel_date",
        "travel_from",
        "travel_to",
        "travel_class",
        "travel_cost",
        "transaction_id",
    )
    return any(
        isinstance(r, dict) and all(k in r for k in keys) and r["card_id"] in api.credit_card_list
        for r in api.booking_record.values()
    )


def _car(w: World) -> Any:
    return w.instances["VehicleControlAPI"]


Gate = Callable[[World], bool]
GATES: dict[str, Gate] = {
    "files_here": _files_here,
    "two_files_here": lambda w: _files_here(w, 2),
    # rmdir removes only a folder the variant made (see samplers_fs.rmdir): always make one
    "empty_dir_here": lambda w: False,
    "twitter_auth": lambda w: bool(w.instances["TwitterAPI"].authenticated),
    "a_tweet": lambda w: bool(w.instances["TwitterAPI"].tweets),
    "trading_auth": lambda w: bool(w.instances["TradingBot"].authenticated),
    "market_open": lambda w: w.instances["TradingBot"].market_status == "Open",
    "open_order": lambda w: any(
        isinstance(o, dict) and o.get("status") not in ("Completed", None)
        for o in w.instances["TradingBot"].orders.values()
    ),
    "watched_stock": lambda w: bool(w.instances["TradingBot"].watch_list),
    "message_login": lambda w: bool(w.instances["MessageAPI"].current_user),
    "ticket_login": lambda w: bool(w.instances["TicketAPI"].current_user),
    "a_ticket": lambda w: bool(w.instances["TicketAPI"].ticket_queue),
    "travel_token": _travel_token,
    "traveler_known": lambda w: bool(w.instances["TravelAPI"].user_first_name),
    "a_booking": _complete_booking,
    "doors_locked": lambda w: _car(w).remainingUnlockedDoors == 0,
    "brake_full": lambda w: (
        _car(w).brakePedalStatus == "pressed" and _car(w)._brakePedalForce == 1000.0
    ),
    "engine_running": lambda w: _car(w).engine_state == "running",
    "tank_room": lambda w: float(_car(w).fuelLevel) <= 49.0,
}
ENABLER: dict[str, str] = {
    "files_here": "cd",
    "two_files_here": "cd",
    "empty_dir_here": "mkdir",
    "twitter_auth": "authenticate_twitter",
    "a_tweet": "post_tweet",
    "trading_auth": "trading_login",
    "open_order": "place_order",
    "watched_stock": "add_to_watchlist",
    "message_login": "message_login",
    "ticket_login": "ticket_login",
    "a_ticket": "create_ticket",
    "travel_token": "authenticate_travel",
    "traveler_known": "authenticate_travel",
    "a_booking": "book_flight",
    "doors_locked": "lockDoors",
    "brake_full": "pressBrakePedal",
    "engine_running": "startEngine",
}
_NEEDS_SPEC = {
    "cat tail sort wc grep rm echo cp mv": "files_here",
    "diff": "two_files_here",
    "rmdir": "empty_dir_here",
    "post_tweet follow_user unfollow_user list_all_following": "twitter_auth",
    "retweet comment": "twitter_auth a_tweet",
    "get_tweet get_tweet_comments mention": "a_tweet",
    "place_order get_account_info fund_account get_watchlist get_order_history get_transaction_history": "trading_auth",
    "withdraw_funds": "trading_auth market_open",
    "remove_stock_from_watchlist": "trading_auth watched_stock",
    "cancel_order": "open_order",
    "send_message delete_message view_messages_sent search_messages get_message_stats": "message_login",
    "create_ticket get_user_tickets": "ticket_login",
    "get_ticket close_ticket resolve_ticket edit_ticket": "a_ticket",
    "book_flight get_credit_card_balance register_credit_card get_booking_history set_budget_limit": "travel_token",
    "retrieve_invoice cancel_booking purchase_insurance": "travel_token a_booking",
    "contact_customer_support": "a_booking",
    "verify_traveler_information": "traveler_known",
    "startEngine": "doors_locked brake_full",
    "setCruiseControl": "engine_running",
    "fillFuelTank": "tank_room",
}
NEEDS: dict[str, tuple[str, ...]] = {
    f: tuple(gates.split()) for funcs, gates in _NEEDS_SPEC.items() for f in funcs.split()
}
# Functions the simulator answers with an error in every state (kept for completeness: the
# planner never picks them; a seed that uses one is still answered with other functions).
ALWAYS_FAILS: frozenset[str] = frozenset({"get_outside_temperature_from_weather_com"})
# Functions that undo the state the rest of a conversation needs; planned only as a last call.
CLOSERS: frozenset[str] = frozenset({"logout", "trading_logout"})


def shut_gates(function: str, world: World) -> list[str]:
    """The gates of `function` that are shut in `world` (class missing → shut)."""
    out = []
    for gate in NEEDS.get(function, ()):
        try:
            ok = GATES[gate](world)
        except KeyError:
            ok = False
        if not ok:
            out.append(gate)
    return out


def feeds(producer: str, consumer: str) -> bool:
    return bool(PRODUCES.get(producer, frozenset()) & CONSUMES.get(consumer, frozenset()))


@functools.cache
def _number_wants(function: str) -> tuple[str, ...]:
    """The kinds `function`'s numeric parameters take (`rods.semantics`; an argument-dependent
    unit or currency read as any: `money:{base_currency}` → `money:*`); () when undeclared."""
    decl = semantics.DECLARATIONS.get(function)
    if decl is None:
        return ()
    return tuple(re.sub(r"\{[^}]*\}", "*", k) for k in decl.params.values())


def takes_number(function: str, meanings: Iterable[str | None]) -> bool:
    """Whether some number of these meanings may flow into `function` (the planner's view of
    `CONSUMES`'s coarse `number`: a gallon converter takes no distance)."""
    if "number" not in CONSUMES.get(function, frozenset()):
        return False
    wants = _number_wants(function)
    return any(
        not wants or any(semantics.accepts(w, m) is True for w in wants) for m in meanings
    )


def consumes_offered(function: str, kinds: set[str], meanings: set[str | None]) -> bool:
    """`feeds` against a live flow: a coarse kind other than `number` in common, or a number
    whose meaning `function` takes."""
    wanted = CONSUMES.get(function, frozenset())
    return bool((wanted - {"number"}) & kinds) or ("number" in kinds and takes_number(function, meanings))
