"""Wordings in the register of BFCL's human turns for what the templates said one fixed way.

Issue 13's discriminator (naive Bayes over word 1-2-grams) told every variant from the human
tasks; its heaviest variant-side features were fixed wordings no BFCL user writes: "the flight
you just booked" (a result referred to by its source), "(my access token is '…')", dates as
"on '2026-04-15'", "look up …", "tell me …". The training split's users say "access token
'abc123xyz'", "with id", "on October 15, 2026", "could you retrieve …", "I'd like to know …". Each
helper here draws among a few such wordings, the old one among them, so that no single one
recurs in most variants; none changes a value the agent needs.
"""

from __future__ import annotations

import random
import re

_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip
_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_JUST = re.compile(r"^the (?P<noun>[\w' ]+?) you just (?P<verb>\w+)$")


def _ordinal(day: int) -> str:
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def date(value: str, rng: random.Random) -> str:
    """An ISO date as BFCL's users write it ("October 15, 2026", "the 15th of October 2026"),
    or quoted as it was; anything else quoted."""
    m = _ISO.match(value)
    if not m:
        return f"'{value}'"
    year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if not 1 <= month <= 12 or not 1 <= day <= 31:
        return f"'{value}'"
    name = _MONTHS[month - 1]
    forms = (
        f"{name} {day}, {year}",
        f"{name} {_ordinal(day)}, {year}",
        f"{name} {_ordinal(day)} {year}",
        f"the {_ordinal(day)} of {name} {year}",
        value,
    )
    return rng.choice(forms)


def source(text: str, rng: random.Random) -> str:
    """A result referred to by its source: "the flight you just booked" sometimes becomes "that
    flight", "the flight you booked" or "the flight booked earlier" (the only flight offered)."""
    m = _JUST.match(text)
    if not m:
        return text
    noun, verb = m.group("noun"), m.group("verb")
    forms = (text, f"the {noun} you {verb}", f"that {noun}", f"the {noun} {verb} earlier")
    return rng.choice(forms)


# Every form of `token`, for the writer, which says a credential once per turn.
TOKEN_ASIDE = re.compile(
    r" \(my access token is '[^']*'\)| using access token '[^']*'| with (?:my )?access token '[^']*'"
    r"|, access token '[^']*'"
)


def token(value: str, rng: random.Random) -> str:
    """The access-token aside of a travel request (`value` already quoted)."""
    forms = (
        f" (my access token is {value})",
        f" using access token {value}",
        f" with access token {value}",
        f" with my access token {value}",
        f", access token {value}",
    )
    return rng.choice(forms)


def card(value: str, rng: random.Random) -> str:
    """A credit card the user names (`value` already quoted): "my card '…'" was the only form;
    BFCL's users say "the credit card with id '…'", "my credit card '…'"."""
    forms = (f"my card {value}", f"my credit card {value}", f"the credit card with id {value}", f"card {value}")
    return rng.choice(forms)


def pay(rng: random.Random) -> str:
    """How a booking is paid ("paying with " was the only form)."""
    return rng.choice(("paying with ", "using ", "with ", "and charge it to "))


# The clause leads of the templates that humans never write, with the wordings they use.
_LEADS: dict[str, tuple[str, ...]] = {
    "tell me ": (
        "tell me ", "let me know ", "determine ", "I need to know ", "check ", "I'd like to know ",
    ),  # fmt: skip
    "look up ": ("locate ", "retrieve ", "get ", "identify "),
    "get me ": ("get me ", "provide ", "retrieve ", "I need "),
    "show me ": ("show me ", "display ", "provide ", "I'd like to see ", "pull up "),
}


def lead(text: str, rng: random.Random) -> str:
    """A clause's fixed opening verb ("tell me …", "look up …") replaced by one of its human
    wordings; other clauses unchanged."""
    for old, forms in _LEADS.items():
        if text.startswith(old):
            return rng.choice(forms) + text[len(old) :]
    return text
