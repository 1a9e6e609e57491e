"""A new world per variant: the seed's `initial_config` with its values redrawn, class by class.

Issue 13 found every variant reusing its seed's world unchanged. `vary_config` keeps the seed's
*shape* (the same directories nested the same way, the same number of tweets, tickets, cards,
orders; the same flags such as `authenticated` or `market_status`, which the seed's skills depend
on) and redraws its *values* from the combinatorial pools of `pools.py`: file and folder names
(extensions kept), file contents, user names and passwords, post and message texts, ticket
texts and ids, balances, prices, card numbers, fuel and tire figures, the car's destination.

Consistency per simulator class: a renamed Twitter user is renamed in its posts too; a message
user keeps its id; a card id changed in the card list is changed in the bookings that use it;
the ticket counter stays above every ticket id; the cardholder is the traveller. Keys the
simulator reads but the seed omits are left to the simulator's defaults. A varied config that
does not load falls back to the seed's (the caller checks with `World.load`).
"""

from __future__ import annotations

import copy
import random
from typing import Any

from graphs.synthesis.procedural import pools
from graphs.synthesis.procedural.scope import CITY_ZIPCODES, sectors

# The simulators' defaults for keys most seeds omit (posting_api / message_api DEFAULT_STATE):
# written out with new names, which is what the simulator would otherwise load.
_DEFAULT_FOLLOWING = ["alice", "bob"]
_DEFAULT_USERS = {"Alice": "USR001", "Bob": "USR002", "Catherine": "USR003", "Daniel": "USR004"}


def _vary_tree(node: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A directory's `contents` with names and file texts redrawn (shape kept)."""
    out: dict[str, Any] = {}
    for name, item in node.items():
        new = name
        if item.get("type") == "directory":
            if rng.random() < 0.6:
                new = pools.dir_name(rng)
            body = {"type": "directory", "contents": _vary_tree(item.get("contents", {}), rng)}
        else:
            if rng.random() < 0.75 and not name.startswith("."):
                ext = name.rsplit(".", 1)[1] if "." in name else None
                new = pools.file_name(rng, ext)
            content = item.get("content", "")
            if rng.random() < 0.8:
                n = max(1, min(4, content.count("\n") + 1))
                # a closing newline: the long-context mode appends its text right after the
                # content, and a value read off the last line must stay a whole line there
                content = "\n".join(pools.sentence(rng) for _ in range(n)) + "\n"
            body = {"type": "file", "content": content}
        while new in out:
            new = pools.file_name(rng) if body["type"] == "file" else pools.dir_name(rng)
        out[new] = body
    return out


def _fs(section: dict[str, Any], rng: random.Random) -> None:
    root = section.get("root")
    if not isinstance(root, dict) or len(root) != 1:
        return
    (name, top), = root.items()
    if isinstance(top, dict) and top.get("type") == "directory":
        section["root"] = {name: {"type": "directory", "contents": _vary_tree(top.get("contents", {}), rng)}}


def _twitter(section: dict[str, Any], rng: random.Random) -> None:
    old = section.get("username")
    new = pools.username(rng)
    if old is not None:
        section["username"] = new
    if "password" in section:
        section["password"] = pools.password(rng)
    others: dict[str, str] = {}
    for tweet in (section.get("tweets") or {}).values():
        if not isinstance(tweet, dict):
            continue
        author = tweet.get("username")
        if author == old:
            tweet["username"] = new
        elif isinstance(author, str):
            tweet["username"] = others.setdefault(author, pools.username(rng))
        tweet["content"] = pools.short_text(rng)
        if tweet.get("tags"):
            tweet["tags"] = pools.tags(rng)
    following = section.get("following_list", _DEFAULT_FOLLOWING)
    if isinstance(following, list):
        section["following_list"] = [others.get(u) or pools.username(rng) for u in following]


def _message(section: dict[str, Any], rng: random.Random) -> None:
    users = section.get("user_map", _DEFAULT_USERS)
    if isinstance(users, dict) and users:
        names: set[str] = set()
        renamed = {}
        for _name, uid in users.items():
            first = rng.choice(pools.FIRST)
            while first in names:
                first = rng.choice(pools.FIRST)
            names.add(first)
            renamed[first] = uid
        section["user_map"] = renamed
    for box in section.get("inbox") or []:
        if isinstance(box, dict):
            for uid in box:
                box[uid] = pools.short_text(rng) if isinstance(box[uid], str) else [pools.short_text(rng) for _ in box[uid]]


def _ticket(section: dict[str, Any], rng: random.Random) -> None:
    queue = section.get("ticket_queue")
    if not isinstance(queue, list):
        return
    ids: set[int] = set()
    for ticket in queue:
        if not isinstance(ticket, dict):
            continue
        tid = rng.randrange(1000, 9999)
        while tid in ids:
            tid = rng.randrange(1000, 9999)
        ids.add(tid)
        ticket["id"] = tid
        if "title" in ticket:
            ticket["title"] = pools.title(rng)
        if "description" in ticket:
            ticket["description"] = pools.sentence(rng)
    if ids:
        section["ticket_counter"] = max(ids) + 1


def _trading(section: dict[str, Any], rng: random.Random) -> None:
    account = section.get("account_info")
    if isinstance(account, dict):
        if isinstance(account.get("balance"), int | float):
            account["balance"] = pools.figure(rng, 2_000, 60_000)
        if "binding_card" in account:
            account["binding_card"] = int(pools.digits(rng, 16))
    for stock in (section.get("stocks") or {}).values():
        if isinstance(stock, dict) and isinstance(stock.get("price"), int | float):
            scale = rng.uniform(0.85, 1.15)
            for key in ("price", "MA(5)", "MA(20)"):
                if isinstance(stock.get(key), int | float):
                    stock[key] = round(stock[key] * scale, 2)
            stock["percent_change"] = pools.figure(rng, -2.5, 2.5)
    for order in (section.get("orders") or {}).values():
        if isinstance(order, dict):
            if isinstance(order.get("num_shares"), int):
                order["num_shares"] = rng.randrange(1, 120)
            if isinstance(order.get("price"), int | float):
                order["price"] = round(order["price"] * rng.uniform(0.85, 1.15), 2)
    watch = section.get("watch_list")
    if isinstance(watch, list) and watch:
        symbols = sorted({s for names in sectors().values() for s in names} | set(section.get("stocks") or {}))
        known = [s for s in symbols if s in (section.get("stocks") or {})] or symbols
        section["watch_list"] = rng.sample(known, min(len(watch), len(known)))


def _travel(section: dict[str, Any], rng: random.Random) -> None:
    first, last = pools.person(rng)
    if "user_first_name" in section:
        section["user_first_name"], section["user_last_name"] = first, last
    if "access_token" in section:
        section["access_token"] = pools.token(rng)
    if isinstance(section.get("budget_limit"), int | float):
        section["budget_limit"] = float(rng.randrange(5, 60) * 100)
    renamed: dict[str, str] = {}
    cards = section.get("credit_card_list")
    if isinstance(cards, dict):
        new_cards = {}
        for cid, card in cards.items():
            new_id = pools.digits(rng, len(str(cid))) if str(cid).isdigit() else cid
            renamed[cid] = new_id
            if isinstance(card, dict):
                card = dict(card)
                if "card_number" in card:
                    card["card_number"] = pools.digits(rng, 16)
                if "cardholder_name" in card:
                    card["cardholder_name"] = f"{first} {last}"
                if isinstance(card.get("balance"), int | float):
                    card["balance"] = float(rng.randrange(4, 300) * 50)
                if isinstance(card.get("cvv"), int):
                    card["cvv"] = rng.randrange(100, 999)
            new_cards[new_id] = card
        section["credit_card_list"] = new_cards
    for booking in (section.get("booking_record") or {}).values():
        if isinstance(booking, dict) and booking.get("card_id") in renamed:
            booking["card_id"] = renamed[booking["card_id"]]


def _vehicle(section: dict[str, Any], rng: random.Random) -> None:
    if isinstance(section.get("fuelLevel"), int | float):
        section["fuelLevel"] = pools.figure(rng, 4.0, 45.0, 1)
    if isinstance(section.get("batteryVoltage"), int | float):
        section["batteryVoltage"] = pools.figure(rng, 12.0, 13.4, 1)
    if isinstance(section.get("acTemperature"), int | float):
        section["acTemperature"] = float(rng.randrange(16, 29))
    if isinstance(section.get("fanSpeed"), int):
        section["fanSpeed"] = rng.randrange(0, 101, 5)
    if isinstance(section.get("humidityLevel"), int | float):
        section["humidityLevel"] = pools.figure(rng, 25.0, 75.0, 1)
    for key in ("frontLeftTirePressure", "frontRightTirePressure", "rearLeftTirePressure", "rearRightTirePressure"):
        if isinstance(section.get(key), int | float):
            section[key] = float(rng.randrange(27, 38))
    if isinstance(section.get("destination"), str) and section["destination"] in CITY_ZIPCODES:
        section["destination"] = rng.choice(list(CITY_ZIPCODES))


# Classes whose simulator draws ids from `random.Random(scenario["random_seed"])`.
_SEEDED = frozenset({"MessageAPI", "TradingBot", "TravelAPI", "VehicleControlAPI"})
_VARY = {
    "GorillaFileSystem": _fs,
    "TwitterAPI": _twitter,
    "MessageAPI": _message,
    "TicketAPI": _ticket,
    "TradingBot": _trading,
    "TravelAPI": _travel,
    "VehicleControlAPI": _vehicle,
}


def vary_config(config: dict[str, Any], classes: list[str], rng: random.Random) -> dict[str, Any]:
    """A copy of `config` with every involved class's values redrawn (see the module docstring)."""
    out = copy.deepcopy(config)
    for cls in classes:
        if cls in _SEEDED:  # the simulator's own generator (booking, order, message ids)
            out.setdefault(cls, {})["random_seed"] = rng.randrange(10**5, 10**7)
        fn = _VARY.get(cls)
        section = out.get(cls)
        if fn is not None and isinstance(section, dict):
            fn(section, rng)
    return out
