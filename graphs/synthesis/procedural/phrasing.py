"""More ways to say the most frequent calls: goal-stating variants next to `templates.py`'s.

BFCL's users phrase the same request many ways ("Find analysis_report.csv and move it", "what
does the last line look like?"); one or two fixed clauses per function made the same words
recur across variants (issue 13). These variants are written in the register of the training
split's human turns (questions, wants, goals), never naming a function or a parameter; the
writer draws uniformly among `TEMPLATES[f] + EXTRA[f]`.
"""

from __future__ import annotations

from graphs.synthesis.procedural.argtext import WC, token_aside, who
from graphs.synthesis.procedural.render import Args
from graphs.synthesis.procedural.templates import Template


def _tid(a: Args, name: str, noun: str) -> str:
    return a.v(name) if a.flowed(name) else f"{noun} {a.v(name)}"


EXTRA: dict[str, tuple[Template, ...]] = {
    "ls": (
        lambda a: "list what's here" + (", hidden files too" if a.raw("a") else ""),
        lambda a: "what files are in this folder" + (", including hidden ones" if a.raw("a") else ""),
        lambda a: "give me a listing of this directory" + (" with the dot-files" if a.raw("a") else ""),
    ),
    "pwd": (lambda a: "where am I in the file system", lambda a: "remind me of the current path"),
    "mkdir": (
        lambda a: f"set up a folder {a.v('dir_name')}",
        lambda a: f"I need a new directory, {a.v('dir_name')}",
        lambda a: f"add a {a.v('dir_name')} folder",
    ),
    "touch": (
        lambda a: f"make a file named {a.v('file_name')}",
        lambda a: f"I need an empty {a.v('file_name')}",
        lambda a: f"add a new file {a.v('file_name')}",
    ),
    "cat": (
        lambda a: f"what does {a.v('file_name')} say",
        lambda a: f"display {a.v('file_name')}",
        lambda a: f"let me see what's inside {a.v('file_name')}",
        lambda a: f"read out {a.v('file_name')} for me",
    ),
    "tail": (
        lambda a: (
            f"what are the last {a.n('lines')} lines of {a.v('file_name')}"
            if a.has("lines")
            else f"how does {a.v('file_name')} end"
        ),
        lambda a: f"check the bottom of {a.v('file_name')}"
        + (f", {a.n('lines')} lines" if a.has("lines") else ""),
    ),
    "sort": (
        lambda a: f"sort {a.v('file_name')}",
        lambda a: f"I'd like {a.v('file_name')} sorted line by line",
    ),
    "wc": (
        lambda a: f"how many {WC.get(a.raw('mode') or 'l', 'lines')} does {a.v('file_name')} have",
        lambda a: f"get me the {WC.get(a.raw('mode') or 'l', 'line')[:-1]} count of {a.v('file_name')}",
    ),
    "grep": (
        lambda a: f"find the lines in {a.v('file_name')} with {a.v('pattern')}",
        lambda a: f"which lines of {a.v('file_name')} mention {a.v('pattern')}",
        lambda a: f"scan {a.v('file_name')} for {a.v('pattern')}",
    ),
    "diff": (
        lambda a: f"what changed between {a.v('file_name1')} and {a.v('file_name2')}",
        lambda a: f"spot the differences between {a.v('file_name1')} and {a.v('file_name2')}",
    ),
    "find": (
        lambda a: f"find anything called {a.v('name')}",
        lambda a: f"track down whatever has {a.v('name')} in its name",
    ),
    "cp": (
        lambda a: f"duplicate {a.v('source')} into {a.v('destination')}",
        lambda a: f"I want a copy of {a.v('source')} in {a.v('destination')}",
    ),
    "mv": (
        lambda a: f"put {a.v('source')} in {a.v('destination')}",
        lambda a: f"shift {a.v('source')} over to {a.v('destination')}",
        lambda a: f"{a.v('source')} should go to {a.v('destination')}",
    ),
    "rm": (
        lambda a: f"remove {a.v('file_name')}",
        lambda a: f"{a.v('file_name')} can go, delete it",
        lambda a: f"trash {a.v('file_name')}",
    ),
    "echo": (
        lambda a: (
            f"put {a.v('content')} in {a.v('file_name')}"
            if a.has("file_name")
            else f"echo {a.v('content')} back to me"
        ),
        lambda a: (
            f"fill {a.v('file_name')} with {a.v('content')}"
            if a.has("file_name")
            else f"just print {a.v('content')}"
        ),
    ),
    "du": (
        lambda a: "how big is this folder" + (" in human terms" if a.raw("human_readable") else ", in bytes"),
    ),
    "get_stock_info": (
        lambda a: f"how is {a.v('symbol')} doing today",
        lambda a: f"what's the latest on {a.v('symbol')}",
    ),
    "add_to_watchlist": (
        lambda a: f"add {a.v('stock')} to the watchlist",
        lambda a: f"I want to keep an eye on {a.v('stock')}",
    ),
    "get_watchlist": (lambda a: "what's on my watchlist", lambda a: "which stocks am I watching"),
    "get_account_info": (
        lambda a: "what's my account balance looking like",
        lambda a: "pull up my trading account",
    ),
    "get_order_details": (
        lambda a: f"what's the status of {_tid(a, 'order_id', 'order')}",
        lambda a: f"check on {_tid(a, 'order_id', 'order')}",
    ),
    "cancel_order": (
        lambda a: f"call off {_tid(a, 'order_id', 'order')}",
        lambda a: f"{_tid(a, 'order_id', 'order')} shouldn't go through, cancel it",
    ),
    "get_ticket": (
        lambda a: f"what's in {_tid(a, 'ticket_id', 'ticket')}",
        lambda a: f"look at {_tid(a, 'ticket_id', 'ticket')}",
    ),
    "close_ticket": (
        lambda a: f"{_tid(a, 'ticket_id', 'ticket')} can be closed now",
        lambda a: f"shut {_tid(a, 'ticket_id', 'ticket')}",
    ),
    "get_user_tickets": (
        lambda a: "which tickets do I have" + (f" that are {a.v('status')}" if a.has("status") else ""),
    ),
    "get_tweet": (lambda a: f"let me see {_tid(a, 'tweet_id', 'post')}",),
    "get_user_tweets": (lambda a: f"what has {a.v('username')} posted",),
    "search_tweets": (lambda a: f"find posts about {a.v('keyword')}",),
    "follow_user": (lambda a: f"follow {a.v('username_to_follow')}",),
    "list_all_following": (lambda a: "who am I following",),
    "send_message": (lambda a: f"message {who(a)}: {a.v('message')}",),
    "view_messages_sent": (lambda a: "what messages have I sent",),
    "list_users": (lambda a: "who's in the workspace",),
    "get_flight_cost": (
        lambda a: f"how much is a {a.raw('travel_class')} flight from {a.v('travel_from')} to {a.v('travel_to')} on {a.date('travel_date')}",
    ),
    "get_all_credit_cards": (lambda a: "which cards do I have registered",),
    "get_booking_history": (lambda a: "what have I booked so far" + token_aside(a),),
    "get_nearest_airport_by_city": (lambda a: f"which airport is nearest to {a.w('location')}",),
    "displayCarStatus": (lambda a: f"how's the car's {a.raw('option')} looking",),
    "check_tire_pressure": (lambda a: "are my tires okay", lambda a: "what's the tire pressure"),
    "estimate_distance": (
        lambda a: f"how far is it from {a.v('cityA')} to {a.v('cityB')}",
        lambda a: f"get me the distance between {a.v('cityA')} and {a.v('cityB')}",
        lambda a: f"work out the mileage from {a.v('cityA')} to {a.v('cityB')}",
        lambda a: f"what's the driving distance between {a.v('cityA')} and {a.v('cityB')}",
    ),
    "get_outside_temperature_from_google": (lambda a: "how warm is it outside",),
    "startEngine": (lambda a: "get the engine running", lambda a: "fire up the car"),
    "add": (lambda a: f"what's {a.v('a')} plus {a.v('b')}",),
    "multiply": (lambda a: f"what do {a.v('a')} and {a.v('b')} multiply to",),
    "mean": (lambda a: f"what's the average of {a.v('numbers')}",),
    "round_number": (
        lambda a: f"round {a.v('number')} off"
        + (f" to {a.n('decimal_places')} places" if a.has("decimal_places") else ""),
    ),
}
