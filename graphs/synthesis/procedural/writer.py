"""The procedural query writer: user turns that state goals and leave the steps implicit.

Issue 13 found one clause per call ("switch over to 'project'; after that, relocate …"), two
greetings in 73 of 76 openers and fixed joins. BFCL's users say what they want and leave the
agent to plan the steps; most of their turns open with no greeting. So, per turn:

- Implicit steps (`_fold`): a call that only sets up the next one in the same turn gets no clause
  of its own. A `cd` becomes where the next clause happens ("… in 'reports'"); a look-up whose
  result the next call takes (a company's ticker, a user's id, a city's zip code or airport)
  disappears, the consumer naming the thing itself ("buy 10 shares of Nvidia"); a login becomes
  an aside with the credentials the agent needs; locking up and pressing the brake before
  starting the engine are left to the agent (or said in passing). What the agent cannot infer
  (values, files, people) is still said.
- Framing (`_frame`): each turn is built from a few dozen frames and joins, with no opener in
  most turns and a short one drawn from a pool of several dozen in the rest, so that no opener
  or join recurs in more than a few percent of turns.

Values the user must supply are named, values earlier results offered are described by their
source (`render.py`): that is what makes a variant's data flow, and it is unchanged here.
"""

from __future__ import annotations

import functools
import random
import re

from graphs.synthesis.procedural import voice
from graphs.synthesis.procedural.flow import Flow
from graphs.synthesis.procedural.mined import matching
from graphs.synthesis.procedural.phrasing import EXTRA
from graphs.synthesis.procedural.render import Args
from graphs.synthesis.procedural.story import Story
from graphs.synthesis.procedural.templates import TEMPLATES
from rods.tasks import ToolCall, function_docs

# Openers of a conversation's first turn (most turns have none: P_OPENER).
P_OPENER_FIRST, P_OPENER_LATER = 0.3, 0.3
# A context sentence from the variant's story (`story.py`) before the request: BFCL's users
# explain themselves in most first turns and in many later ones; a later turn without one may
# still link back to the previous turn.
P_CONTEXT_FIRST, P_CONTEXT_LATER, P_LINK = 0.8, 0.55, 0.25
# A one-call turn is said in the words of a human turn of the training split for the same
# function (`mined.py`) when one fits: BFCL's own phrasing, with this variant's values.
P_MINED = 0.4
_FIRST_OPENERS = (
    "Hi.", "Hey.", "Morning.", "Quick favour.", "Okay, so.", "Right.", "Hello!",
    "I've got a few things to sort out.", "Let's get started.", "Busy day here.",
    "I could use some help.", "Here's what I need.", "So,", "Alright.", "Good afternoon.",
    "Before my meeting:", "First things first:", "Hi there, quick one.", "Listen,",
    "OK, here goes.", "Hey, got a minute?", "Evening.", "To start with,", "Let me explain.",
    "I'm in a bit of a rush.", "A small task for you.", "Hope you're well.", "Good morning!",
)  # fmt: skip
_LATER_OPENERS = (
    "Great.", "Thanks.", "Perfect.", "Good.", "Okay.", "Nice, thanks.", "Alright.",
    "Got it.", "Cool.", "Now,", "Next,", "Also,", "One more thing:", "Oh, and", "Then,",
    "Thanks for that.", "Excellent.", "Right, next:", "That's helpful.", "Moving on,",
    "Following up,", "On another note,", "While you're at it,", "Lovely.", "Fine.",
    "Hmm, okay.", "Good stuff.", "Appreciate it.", "Sounds good.", "Noted.",
)  # fmt: skip
# Frames of a turn's first clause: (prefix, terminal). Lower-case clause follows the prefix.
_FRAMES = (
    ("", "."), ("", "."), ("", "."), ("", "."), ("", "."), ("", "."),
    ("Please ", "."), ("Can you ", "?"), ("Could you ", "?"), ("Now ", "."), ("Kindly ", "."),
    ("Just ", "."), ("Would you ", "?"), ("Next ", "."), ("Also ", "."), ("Then ", "."),
    ("Please ", "."), ("Could you ", "?"), ("First ", "."), ("Kindly ", "."),
)  # fmt: skip
_LATER_ONLY = frozenset({"Next ", "Also ", "Then ", "Now "})
# Joins between clauses of one turn: (text, starts a new sentence).
_JOINS = (
    (" and ", False), (", then ", False), (", and then ", False), (" and also ", False),
    (", plus ", False), ("; ", False), (" and after that ", False), (", and next ", False),
    (". Then ", True), (". After that, ", True), (". Also ", True), (". ", True), (". ", True),
    (". Once that's done, ", True), (". Next, ", True), (". And ", True), (". Finally, ", True),
    (". When that's finished, ", True), (". I also need you to ", True), (". Could you also ", True),
    (". Oh, and ", True), (" — then ", False), (", and afterwards ", False), (". Afterwards, ", True),
)  # fmt: skip
_LOCATIONS = (" in {0}", " inside {0}", ", over in {0}", " (it's in {0})", " within {0}")
_LOCATION_FRONT = ("In {0}, ", "Over in {0}, ", "Inside {0}, ", "Within {0}, ")
_LOGINS = {
    "authenticate_twitter": ("username", "password"),
    "trading_login": ("username", "password"),
    "ticket_login": ("username", "password"),
}
_CRED = (
    " (my login is {u}, password {p})",
    " — sign in as {u} with {p} first",
    " using my account {u} (password {p})",
    "; I'm {u}, password {p}",
    " after logging me in as {u}, password {p}",
)
# Look-ups whose result the next call of the same turn names by their argument (render._SOURCE).
_LOOKUPS = frozenset(
    {"get_symbol_by_name", "get_user_id", "get_zipcode_based_on_city", "get_nearest_airport_by_city"}
)
_CAR_SETUP = frozenset({"lockDoors", "pressBrakePedal"})


def clause(call: ToolCall, flow: Flow, rng: random.Random) -> str:
    """One call as an imperative clause (raises KeyError for a function without a template)."""
    variants = TEMPLATES[call.name] + EXTRA.get(call.name, ())
    return voice.lead(variants[rng.randrange(len(variants))](Args(call, flow, rng)), rng)


def _feeds_next(i: int, rest: tuple[ToolCall, ...], flow: Flow) -> bool:
    """Whether a value call i's result offered is an argument of one of the `rest` calls."""
    offered = [o.value for o in flow.offers if o.call == i]
    later = [v for c in rest for v in c.arguments.values()]
    return any(v == o for v in later for o in offered if not isinstance(o, bool))


def _foldable_cd(call: ToolCall, following: ToolCall, location: list[str]) -> bool:
    """A `cd` the next clause can say as a place: into a folder, or up once from the start; a
    move that a later `cd('..')` undoes stays explicit (its result is part of the ground truth)."""
    if following.name == "cd" and following.arguments.get("folder") == "..":
        return False
    return call.arguments.get("folder") != ".." or not location


def _car_setup_implicit(call: ToolCall) -> bool:
    if call.name == "lockDoors":
        doors = call.arguments.get("door") or []
        return not call.arguments.get("unlock") and len(doors) == 4
    return call.name == "pressBrakePedal" and call.arguments.get("pedalPosition") == 1.0


def _turn_clauses(
    calls: tuple[ToolCall, ...], results: tuple[str, ...], flow: Flow, rng: random.Random
) -> list[str]:
    """The turn's explicit clauses, with setup calls folded into them (see the docstring)."""
    base = len(flow.calls)
    clauses: list[str] = []
    location: list[str] = []
    aside = ""
    said: set[str] = set()
    for j, (call, result) in enumerate(zip(calls, results, strict=True)):
        last = j == len(calls) - 1
        args = Args(call, flow, rng)
        if call.name == "cd" and not last and _foldable_cd(call, calls[j + 1], location):
            folder = call.arguments.get("folder")
            location.append("the parent folder" if folder == ".." else args.v("folder"))
            flow.add(call, result)
            continue
        if not last and call.name in _LOGINS:
            u, p = _LOGINS[call.name]
            aside = rng.choice(_CRED).format(u=args.v(u), p=args.v(p))
            flow.add(call, result)
            continue
        if not last and call.name in _CAR_SETUP and _car_setup_implicit(call):
            if any(c.name == "startEngine" for c in calls[j + 1 :]):
                flow.add(call, result)
                continue
        text = clause(call, flow, rng)
        flow.add(call, result)
        if call.name in _LOOKUPS and not last and _feeds_next(base + j, calls[j + 1 :], flow):
            continue  # the consumer names the looked-up thing itself
        for a in voice.TOKEN_ASIDE.findall(text):  # say a credential once per turn
            value = a[a.index("'") : a.rindex("'") + 1]
            if value in said:
                text = text.replace(a, "")
            said.add(value)
        if location:
            where = " inside ".join(reversed(location))
            if rng.random() < 0.5 and _kind(text) == "i":
                text = rng.choice(_LOCATION_FRONT).format(where) + text
            else:
                text += rng.choice(_LOCATIONS).format(where)
            location = []
        text += aside
        aside = ""
        clauses.append(text)
    return clauses


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def _low(text: str) -> str:
    if text[:2] in ("I ", "I'") or text[1:2].isupper():
        return text  # "I …", an acronym
    return text[:1].lower() + text[1:]


_QUESTION_WORDS = frozenset("what how which who where are is does do can".split())
_STATEMENT_WORDS = frozenset("the that those my i i'd i'm i've ticket order post booking".split())
_LEADS = ("", "", "Also, ", "And ", "Then ", "Oh, and ", "Next: ", "After that, ")


def _kind(text: str) -> str:
    """'q' a question clause, 's' a statement, 'i' an imperative (the templates' default)."""
    first = re.match(r"[a-z]+", text.lower())
    word = first.group(0) if first else ""
    if word in _QUESTION_WORDS:
        return "q"
    if word in _STATEMENT_WORDS or text[:1] in "'\"" or text[:1].isdigit():
        return "s"
    return "i"


def _frame(clauses: list[str], first: bool, rng: random.Random, opener: bool = True) -> str:
    """One turn's text from its clauses: maybe an opener, a frame, varied joins."""
    sentences: list[str] = []
    current, terminal, joinable = "", ".", False
    for n, text in enumerate(clauses):
        kind = _kind(text)
        located = text.split(" ", 1)[0] in ("In", "Over", "Inside", "Within")
        if n and kind == "i" and joinable:
            join, breaks = rng.choice(_JOINS)
            if not breaks:
                current += join + _low(text)
                continue
            sentences.append(_cap(current) + terminal)
            terminal = "?" if join == ". Could you also " else "."
            current = (join.removeprefix(". ") + _low(text)) if join != ". " else _cap(text)
            continue
        if n:
            sentences.append(_cap(current) + terminal)
        terminal = "?" if kind == "q" else "."
        joinable = kind == "i" and not located
        if n == 0 and kind == "i" and not located:
            prefix, terminal = rng.choice(_FRAMES)
            if first and prefix in _LATER_ONLY:
                prefix = ""  # a conversation does not open with "Next …"
            current = prefix + _low(text) if prefix else text
        elif n == 0:
            current = text
        else:
            lead = rng.choice(_LEADS)
            current = lead + _low(text) if lead else _cap(text)
    sentences.append(_cap(current) + terminal)
    body = " ".join(sentences)
    if opener and rng.random() < (P_OPENER_FIRST if first else P_OPENER_LATER):
        opener = rng.choice(_FIRST_OPENERS if first else _LATER_OPENERS)
        if opener.endswith((",", ":")) or opener == "Oh, and":
            return f"{opener} {_low(body)}"
        return f"{opener} {body}"
    return body


@functools.cache
def _owners() -> dict[str, str]:
    return {d["name"]: cls for cls, docs in function_docs().items() for d in docs}


def _turn_class(calls: tuple[ToolCall, ...]) -> str:
    names = [_owners().get(c.name, "") for c in calls]
    return max(set(names), key=names.count) if names else ""


def _mined_turn(call: ToolCall, flow: Flow, rng: random.Random, avoid: str) -> str | None:
    """The call said in a mined human turn's words (its slots filled with this call's values)."""
    fits = matching(call.name, call.arguments, avoid)
    if not fits:
        return None
    pattern = fits[rng.randrange(len(fits))]
    args = Args(call, flow, rng)
    if any(args.flowed(p) for p in pattern.slots):
        return None  # a human slot holds a value, not a description of where one came from
    return pattern.text.format(**{p: args.v(p) for p in pattern.slots})


def write_queries(
    calls_per_turn: tuple[tuple[ToolCall, ...], ...],
    results_per_turn: tuple[tuple[str, ...], ...],
    rng: random.Random,
    avoid: str = "",
) -> list[str]:
    """One user turn per executed turn (raises KeyError for a function without a template);
    `avoid`: the seed's scenario, whose own mined turns are not reused."""
    flow = Flow([])
    story = Story(rng)
    out = []
    for u, (calls, results) in enumerate(zip(calls_per_turn, results_per_turn, strict=True)):
        if len(calls) == 1 and rng.random() < P_MINED:
            mined = _mined_turn(calls[0], flow, rng, avoid)
            if mined is not None:
                flow.add(calls[0], results[0])
                out.append(mined)
                continue
        clauses = _turn_clauses(calls, results, flow, rng) if calls else []
        if not clauses:
            out.append("")
            continue
        context = ""
        if rng.random() < (P_CONTEXT_FIRST if u == 0 else P_CONTEXT_LATER):
            context = story.context(_turn_class(calls))
        # the context before the request (most first turns) or after it (most later ones)
        before = bool(context) and rng.random() < (0.6 if u == 0 else 0.3)
        linked = u > 0 and not before and rng.random() < P_LINK
        body = _frame(clauses, u == 0, rng, opener=not (before or linked))
        if linked:
            link = story.link()
            body = f"{link} {_low(body) if link.endswith(',') else body}"
        if context:
            body = f"{context} {body}" if before else f"{body} {context}"
        out.append(body)
    return out
