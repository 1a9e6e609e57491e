"""How argument values read in a user's words: doors, units, travel classes, accounts, cards,
bookings, access tokens, ticket updates. Shared by the phrase templates (`templates.py`) and the
extra phrasings (`phrasing.py`); a value that came from an earlier result is described by its
source (`Args.flowed`), not restated.
"""

from __future__ import annotations

from graphs.synthesis.procedural import voice
from graphs.synthesis.procedural.render import Args, direct
from graphs.synthesis.procedural.scope import SI_UNITS


def opt(a: Args, name: str, text: str) -> str:
    return text if a.has(name) else ""


def updates_text(a: Args) -> str:
    parts = []
    for key, value in (a.raw("updates") or {}).items():
        label = {
            "title": "the heading",
            "description": "the details",
            "status": "the state",
            "priority": "the urgency level",
        }[key]
        parts.append(f"{label} to {direct(value)}")
    return direct_list(parts)


def direct_list(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


WC = {"l": "lines", "w": "words", "c": "characters"}
CAR_STATUS = {
    "fuel": "fuel level",
    "battery": "battery voltage",
    "doors": "door locks",
    "climate": "climate settings",
    "headlights": "headlights",
    "parkingBrake": "parking brake",
    "brakePedal": "brake pedal",
    "engine": "engine state",
}
UNITS = {
    **SI_UNITS,  # the simulator's metric lengths, as scope.py samples them
    "in": "inches",
    "ft": "feet",
    "yd": "yards",
    "miles": "miles",
    "kg": "kilograms",
    "lb": "pounds",
    "celsius": "degrees Celsius",
    "fahrenheit": "degrees Fahrenheit",
}
DOORS = {
    "driver": "driver's",
    "passenger": "passenger",
    "rear_left": "rear left",
    "rear_right": "rear right",
}


def door_list(a: Args) -> str:
    doors = a.raw("door") or []
    if len(doors) == 4:
        return "all the doors"
    return (
        "the "
        + direct_list([DOORS.get(d, d) for d in doors])
        + (" door" if len(doors) == 1 else " doors")
    )


def unit_name(code: str) -> str:
    return UNITS.get(code, code)


def travel_class(a: Args) -> str:
    return {
        "economy": "an economy-class",
        "business": "a business-class",
        "first": "a first-class",
    }.get(a.raw("travel_class"), f"a {a.raw('travel_class')}")


def who(a: Args) -> str:
    return a.v("receiver_id") if a.flowed("receiver_id") else f"the account {a.v('receiver_id')}"


def card(a: Args) -> str:
    return a.v("card_id") if a.flowed("card_id") else voice.card(a.v("card_id"), a.rng)


def booking(a: Args) -> str:
    return a.v("booking_id") if a.flowed("booking_id") else f"booking {a.v('booking_id')}"


def token_aside(a: Args) -> str:
    if a.flowed("access_token"):
        return ", using " + a.v("access_token")
    return voice.token(a.v("access_token"), a.rng)
