"""Argument samplers of MessageAPI, TwitterAPI and TicketAPI.

Ids come from earlier results when one offers them (a ticket just created, a user id just looked
up, an order just placed), otherwise from the live state (the ticket queue, the user map, the
tweets, the stock table). Credentials are the ones in the state (Twitter) or plausible ones where
the simulator accepts any (ticket and trading logins). Amounts are checked against balances, so
an order or a withdrawal can go through.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from graphs.synthesis.procedural import pools
from graphs.synthesis.procedural.scope import NoArgs, Scope

_MSG, _TW, _TK = "MessageAPI", "TwitterAPI", "TicketAPI"
def _text(s: Scope, draw: Callable[[random.Random], str]) -> str:
    flowed = s.flowed("text", lambda t: isinstance(t, str) and len(t) <= 200)
    return flowed if flowed is not None else draw(s.rng)


def login(s: Scope) -> tuple[str, str]:
    """A fresh user name and password (logins of these simulators accept any pair)."""
    return pools.username(s.rng), pools.password(s.rng)


def _handles(s: Scope, n: int) -> list[str]:
    return [pools.username(s.rng) for _ in range(n)]


# ---------------------------------------------------------------- MessageAPI


def _user_ids(s: Scope) -> list[str]:
    return list(s.inst(_MSG).user_map.values())


def _other_user(s: Scope) -> str:
    api = s.inst(_MSG)
    ids = [u for u in _user_ids(s) if u != api.current_user] or _user_ids(s)
    flowed = s.flowed("user_id", lambda v: v in ids)
    return flowed if flowed is not None else s.pick(ids, "user")


def list_users(s: Scope) -> dict[str, Any]:
    return {}


def get_user_id(s: Scope) -> dict[str, Any]:
    names = list(s.inst(_MSG).user_map)
    flowed = s.flowed("user_name", lambda v: v in names)
    return {"user": flowed if flowed is not None else s.pick(names, "user")}


def message_login(s: Scope) -> dict[str, Any]:
    return {"user_id": s.pick(_user_ids(s), "user")}  # the user's own id: said, never looked up


def message_get_login_status(s: Scope) -> dict[str, Any]:
    return {}


def send_message(s: Scope) -> dict[str, Any]:
    return {"receiver_id": _other_user(s), "message": _text(s, pools.short_text)}


def delete_message(s: Scope) -> dict[str, Any]:
    receivers = [next(iter(m)) for m in s.inst(_MSG).inbox if m]
    flowed = s.flowed("user_id", lambda v: v in receivers)
    return {"receiver_id": flowed if flowed is not None else s.pick(receivers, "sent message")}


def view_messages_sent(s: Scope) -> dict[str, Any]:
    return {}


def get_message_stats(s: Scope) -> dict[str, Any]:
    return {}


def add_contact(s: Scope) -> dict[str, Any]:
    api = s.inst(_MSG)
    if f"USR{str(api.user_count + 1).zfill(3)}" in api.user_map.values():
        raise NoArgs("the simulator would hand out an id that is taken (user_count is stale)")
    taken = set(api.user_map)
    return {"user_name": s.pick([n for n in pools.FIRST if n not in taken], "new contact name")}


def search_messages(s: Scope) -> dict[str, Any]:
    if any(not isinstance(text, str) for m in s.inst(_MSG).inbox for text in m.values()):
        raise NoArgs("the inbox holds a non-text message the simulator cannot search")
    words = [
        w.strip(".,!?'\"")
        for m in s.inst(_MSG).inbox
        for text in m.values()
        for w in (text if isinstance(text, str) else " ".join(map(str, text))).split()
    ]
    words = [w for w in words if len(w) >= 4]
    return {"keyword": s.pick(words) if words else s.pick(("meeting", "report", "update"))}


# ---------------------------------------------------------------- TwitterAPI


def _tweet_id(s: Scope) -> int:
    ids = list(s.inst(_TW).tweets)
    flowed = s.flowed("tweet_id", lambda v: v in ids)
    return flowed if flowed is not None else s.pick(ids, "tweet")


def authenticate_twitter(s: Scope) -> dict[str, Any]:
    api = s.inst(_TW)
    return {"username": api.username, "password": api.password}


def posting_get_login_status(s: Scope) -> dict[str, Any]:
    return {}


def post_tweet(s: Scope) -> dict[str, Any]:
    args: dict[str, Any] = {"content": _text(s, pools.short_text)}
    if s.chance(0.5):
        args["tags"] = pools.tags(s.rng)
    if s.chance(0.3):
        args["mentions"] = _handles(s, 1)
    return args


def retweet(s: Scope) -> dict[str, Any]:
    api = s.inst(_TW)
    done = set(api.retweets.get(api.username, []))
    ids = [t for t in api.tweets if t not in done]
    flowed = s.flowed("tweet_id", lambda v: v in ids)
    return {"tweet_id": flowed if flowed is not None else s.pick(ids, "tweet not yet retweeted")}


def comment(s: Scope) -> dict[str, Any]:
    return {
        "tweet_id": _tweet_id(s),
        "comment_content": s.pick(
            ("Great post!", "Totally agree.", "Thanks for sharing!", "Looking forward to more.")
        ),
    }


def mention(s: Scope) -> dict[str, Any]:
    return {
        "tweet_id": _tweet_id(s),
        "mentioned_usernames": _handles(s, s.rng.randint(1, 2)),
    }


def follow_user(s: Scope) -> dict[str, Any]:
    api = s.inst(_TW)
    following = set(api.following_list) | {api.username}
    authors = sorted({t["username"] for t in api.tweets.values()} | set(_handles(s, 3)))
    flowed = s.flowed("username", lambda v: v not in following)
    return {
        "username_to_follow": flowed
        if flowed is not None
        else s.pick([a for a in authors if a not in following], "user to follow")
    }


def unfollow_user(s: Scope) -> dict[str, Any]:
    following = list(s.inst(_TW).following_list)
    flowed = s.flowed("username", lambda v: v in following)
    return {
        "username_to_unfollow": flowed if flowed is not None else s.pick(following, "followed user")
    }


def list_all_following(s: Scope) -> dict[str, Any]:
    return {}


def get_tweet(s: Scope) -> dict[str, Any]:
    return {"tweet_id": _tweet_id(s)}


def get_tweet_comments(s: Scope) -> dict[str, Any]:
    return {"tweet_id": _tweet_id(s)}


def _username(s: Scope) -> str:
    api = s.inst(_TW)
    authors = sorted({t["username"] for t in api.tweets.values()}) or [api.username]
    flowed = s.flowed("username", lambda v: v in authors)
    return flowed if flowed is not None else s.pick(authors)


def get_user_tweets(s: Scope) -> dict[str, Any]:
    return {"username": _username(s)}


def get_user_stats(s: Scope) -> dict[str, Any]:
    return {"username": _username(s)}


def search_tweets(s: Scope) -> dict[str, Any]:
    api = s.inst(_TW)
    words = [w.strip(".,!?#'\"") for t in api.tweets.values() for w in t["content"].split()]
    words = [w for w in words if len(w) >= 4] + [
        t.lstrip("#") for tw in api.tweets.values() for t in tw.get("tags", [])
    ]
    return {"keyword": s.pick(words) if words else s.pick(("update", "travel", "news"))}


# ---------------------------------------------------------------- TicketAPI


def _ticket_id(s: Scope, ok: Any = lambda t: True) -> int:
    tickets = [t for t in s.inst(_TK).ticket_queue if isinstance(t, dict) and ok(t)]
    ids = [t["id"] for t in tickets if isinstance(t.get("id"), int)]
    flowed = s.flowed("ticket_id", lambda v: v in ids)
    return flowed if flowed is not None else s.pick(ids, "ticket")


def ticket_login(s: Scope) -> dict[str, Any]:
    user, password = login(s)
    return {"username": user, "password": password}


def ticket_get_login_status(s: Scope) -> dict[str, Any]:
    return {}


def logout(s: Scope) -> dict[str, Any]:
    return {}


def create_ticket(s: Scope) -> dict[str, Any]:
    args: dict[str, Any] = {"title": pools.title(s.rng)}
    if s.chance(0.7):
        args["description"] = _text(s, pools.sentence)
    if s.chance(0.7):
        args["priority"] = s.rng.randint(1, 5)
    return args


def get_ticket(s: Scope) -> dict[str, Any]:
    return {"ticket_id": _ticket_id(s)}


def close_ticket(s: Scope) -> dict[str, Any]:
    return {"ticket_id": _ticket_id(s, lambda t: str(t.get("status", "")) != "Closed")}


def resolve_ticket(s: Scope) -> dict[str, Any]:
    return {
        "ticket_id": _ticket_id(s, lambda t: str(t.get("status", "")) != "Resolved"),
        "resolution": pools.resolution(s.rng),
    }


def edit_ticket(s: Scope) -> dict[str, Any]:
    updates: dict[str, Any] = {}
    if s.chance(0.6):
        updates["priority"] = s.rng.randint(1, 5)
    if not updates or s.chance(0.4):
        key = s.pick(("title", "description", "status"))
        updates[key] = {
            "title": pools.title(s.rng),
            "description": pools.sentence(s.rng),
            "status": s.pick(("In Progress", "Pending", "Open")),
        }[key]
    return {"ticket_id": _ticket_id(s), "updates": updates}


def get_user_tickets(s: Scope) -> dict[str, Any]:
    if any("created_by" not in t for t in s.inst(_TK).ticket_queue):
        raise NoArgs("a ticket without an owner makes the simulator fail")
    if s.chance(0.4):
        statuses = sorted(
            {str(t.get("status")) for t in s.inst(_TK).ticket_queue if t.get("status")}
        )
        if statuses:
            return {"status": s.pick(statuses)}
    return {}


MESSAGE_SAMPLERS = {
    f.__name__: f
    for f in (
        list_users,
        get_user_id,
        message_login,
        message_get_login_status,
        send_message,
        delete_message,
        view_messages_sent,
        get_message_stats,
        add_contact,
        search_messages,
    )
}
TWITTER_SAMPLERS = {
    f.__name__: f
    for f in (
        authenticate_twitter,
        posting_get_login_status,
        post_tweet,
        retweet,
        comment,
        mention,
        follow_user,
        unfollow_user,
        list_all_following,
        get_tweet,
        get_tweet_comments,
        get_user_tweets,
        get_user_stats,
        search_tweets,
    )
}
TICKET_SAMPLERS = {
    f.__name__: f
    for f in (
        ticket_login,
        ticket_get_login_status,
        logout,
        create_ticket,
        get_ticket,
        close_ticket,
        resolve_ticket,
        edit_ticket,
        get_user_tickets,
    )
}
