"""Argument samplers of TravelAPI and VehicleControlAPI.

Travel: the access token is the one an earlier login returned or the one in the state; cards,
bookings and airports come from earlier results or the state; a booking is only proposed when the
card can pay the fare (priced exactly as the simulator prices it: base fare × class factor × the
date's digit-sum parity) and stays above the budget limit. Vehicle: fuel never overflows the
50-gallon tank, cruise speeds are multiples of 5, zipcode pairs are ones the distance table knows.
"""

from __future__ import annotations

from typing import Any

from graphs.synthesis.procedural import pools
from graphs.synthesis.procedural.scope import (
    CITY_ZIPCODES,
    ZIPCODE_DISTANCES,
    NoArgs,
    Scope,
    bookable_routes,
    city_airports,
    currency_pairs,
    flight_costs,
)

_TR, _VC = "TravelAPI", "VehicleControlAPI"
_CLASS_FACTOR = {"economy": 1, "business": 2, "first": 5}
_MAX_FUEL = 50.0  # the simulator's tank capacity, in gallons


def _api(s: Scope) -> Any:
    return s.inst(_TR)


def _token(s: Scope) -> str:
    api = _api(s)
    if api.access_token is None or api.token_expires_in == 0:
        raise NoArgs("not logged in to the travel system")
    return api.access_token


def _date(s: Scope) -> str:
    return f"2026-{s.rng.randint(1, 12):02d}-{s.rng.randint(1, 28):02d}"


def _fare(frm: str, to: str, date: str, travel_class: str) -> float:
    parity = 2 if sum(int(c) for c in date if c.isdigit()) % 2 == 0 else 1
    return float(flight_costs()[(frm, to)] * _CLASS_FACTOR[travel_class] * parity)


def _route(s: Scope) -> tuple[str, str]:
    routes = list(bookable_routes())
    airports = s.flow.values("airport")
    if airports:
        both = [r for r in routes if r[0] in airports and r[1] in airports]
        touching = [r for r in routes if r[0] == airports[0] or r[1] == airports[0]]
        if both or touching:
            return s.pick(both or touching)
    return s.pick(routes)


def _card(s: Scope, ok: Any = lambda card: True) -> str:
    cards = {k: v for k, v in _api(s).credit_card_list.items() if ok(v)}
    flowed = s.flowed("card_id", lambda v: v in cards)
    return flowed if flowed is not None else s.pick(list(cards), "credit card")


def _booking(s: Scope, ok: Any = lambda rec: True) -> str:
    records = {k: v for k, v in _api(s).booking_record.items() if isinstance(v, dict) and ok(v)}
    flowed = s.flowed("booking_id", lambda v: v in records)
    return flowed if flowed is not None else s.pick(list(records), "booking")


_BOOKED_KEYS = (
    "card_id",
    "travel_date",
    "travel_from",
    "travel_to",
    "travel_class",
    "travel_cost",
    "transaction_id",
)


def _complete(rec: dict[str, Any]) -> bool:
    return all(k in rec for k in _BOOKED_KEYS)


def authenticate_travel(s: Scope) -> dict[str, Any]:
    api = _api(s)
    first, last = api.user_first_name, api.user_last_name
    if not first or not last:
        holders = [c.get("cardholder_name", "") for c in api.credit_card_list.values()]
        holders = [h.split() for h in holders if isinstance(h, str) and len(h.split()) == 2]
        first, last = holders[0] if holders else pools.person(s.rng)
    return {
        "client_id": f"client_{pools.token(s.rng, 6)}",
        "client_secret": pools.token(s.rng, 10),
        "refresh_token": f"rt_{pools.token(s.rng, 8)}",
        "grant_type": s.pick(("read_write", "read", "write")),
        "user_first_name": first,
        "user_last_name": last,
    }


def travel_get_login_status(s: Scope) -> dict[str, Any]:
    return {}


def list_all_airports(s: Scope) -> dict[str, Any]:
    return {}


def get_all_credit_cards(s: Scope) -> dict[str, Any]:
    return {}


def get_budget_fiscal_year(s: Scope) -> dict[str, Any]:
    return {"lastModifiedAfter": "2024-01-01"} if s.chance(0.3) else {}


def get_nearest_airport_by_city(s: Scope) -> dict[str, Any]:
    return {"location": s.pick(list(city_airports()))}


def get_flight_cost(s: Scope) -> dict[str, Any]:
    frm, to = _route(s)
    return {
        "travel_from": frm,
        "travel_to": to,
        "travel_date": _date(s),
        "travel_class": s.pick(list(_CLASS_FACTOR)),
    }


def book_flight(s: Scope) -> dict[str, Any]:
    api = _api(s)
    token = _token(s)
    quoted = [c.arguments for c in reversed(s.flow.calls) if c.name == "get_flight_cost"]
    for attempt in range(12):
        if quoted and attempt < 3:
            q = quoted[0]
            frm, to, date, cls = (
                q["travel_from"],
                q["travel_to"],
                q["travel_date"],
                q["travel_class"],
            )
        else:
            frm, to = _route(s)
            date, cls = _date(s), s.pick(("economy", "economy", "business", "first"))
        if (frm, to) not in flight_costs() or cls not in _CLASS_FACTOR:
            continue
        fare = _fare(frm, to, date, cls)
        limit = api.budget_limit

        def can_pay(card: dict[str, Any], fare: float = fare, limit: Any = limit) -> bool:
            balance = card.get("balance")
            return (
                isinstance(balance, int | float)
                and balance >= fare
                and (limit is None or balance >= limit)
            )

        if not any(can_pay(c) for c in api.credit_card_list.values()):
            continue
        card = _card(s, can_pay)
        return {
            "access_token": token,
            "card_id": card,
            "travel_date": date,
            "travel_from": frm,
            "travel_to": to,
            "travel_class": cls,
        }
    raise NoArgs("no card can pay a flight")


def get_credit_card_balance(s: Scope) -> dict[str, Any]:
    return {"access_token": _token(s), "card_id": _card(s)}


def register_credit_card(s: Scope) -> dict[str, Any]:
    api = _api(s)
    name = " ".join(x for x in (api.user_first_name, api.user_last_name) if x) or " ".join(
        pools.person(s.rng)
    )
    number = "4" + "".join(str(s.rng.randint(0, 9)) for _ in range(15))
    return {
        "access_token": _token(s),
        "card_number": number,
        "expiration_date": f"{s.rng.randint(1, 12):02d}/{s.rng.randint(2027, 2031)}",
        "cardholder_name": name,
        "card_verification_number": s.rng.randint(100, 999),
    }


def get_booking_history(s: Scope) -> dict[str, Any]:
    return {"access_token": _token(s)}


def retrieve_invoice(s: Scope) -> dict[str, Any]:
    return {"access_token": _token(s), "booking_id": _booking(s, _complete)}


def cancel_booking(s: Scope) -> dict[str, Any]:
    cards = _api(s).credit_card_list
    return {
        "access_token": _token(s),
        "booking_id": _booking(s, lambda r: _complete(r) and r["card_id"] in cards),
    }


def contact_customer_support(s: Scope) -> dict[str, Any]:
    return {"booking_id": _booking(s), "message": pools.support_message(s.rng)}


def purchase_insurance(s: Scope) -> dict[str, Any]:
    api = _api(s)
    cost = float(s.rng.randrange(5, 30) * 10)
    if api.budget_limit is not None and api.budget_limit < cost:
        cost = float(int(api.budget_limit))
        if cost <= 0:
            raise NoArgs("budget limit leaves nothing for insurance")
    return {
        "access_token": _token(s),
        "insurance_type": s.pick(("comprehensive", "travel", "cancellation")),
        "insurance_cost": cost,
        "booking_id": _booking(s),
        "card_id": _card(s),
    }


def compute_exchange_rate(s: Scope) -> dict[str, Any]:
    base, target = s.pick(currency_pairs())
    if s.chance(0.3):
        base, target = target, base
    # a flowed amount is converted from its own currency (rods.semantics: value is in base)
    offer = s.flowed_offer("money:*", lambda v: 0 < v < 1e7)
    if offer is not None:
        held = offer.meaning.split(":", 1)[1]
        pairs = [p if p[0] == held else (p[1], p[0]) for p in currency_pairs() if held in p]
        if pairs:
            base, target = s.pick(pairs)
        else:
            offer = None
    value = offer.value if offer is not None else float(s.rng.randrange(4, 240) * 25)
    return {"base_currency": base, "target_currency": target, "value": value}


def set_budget_limit(s: Scope) -> dict[str, Any]:
    flowed = s.flowed_into("set_budget_limit", "budget_limit", ok=lambda v: 0 < v < 1e6)
    value = flowed if flowed is not None else float(s.rng.randrange(5, 60) * 100)
    return {"access_token": _token(s), "budget_limit": value}


def verify_traveler_information(s: Scope) -> dict[str, Any]:
    api = _api(s)
    if not api.user_first_name or not api.user_last_name:
        raise NoArgs("no traveler on record")
    return {
        "first_name": api.user_first_name,
        "last_name": api.user_last_name,
        "date_of_birth": f"{s.rng.randint(1950, 2000)}-{s.rng.randint(1, 12):02d}-{s.rng.randint(1, 28):02d}",
        "passport_number": f"US{s.rng.randint(100000, 9999999)}",
    }


# ---------------------------------------------------------------- VehicleControlAPI


def _car(s: Scope) -> Any:
    return s.inst(_VC)


def startEngine(s: Scope) -> dict[str, Any]:  # noqa: N802 - the simulator's name
    return {"ignitionMode": "START"}


def fillFuelTank(s: Scope) -> dict[str, Any]:  # noqa: N802
    room = _MAX_FUEL - float(_car(s).fuelLevel)
    if room < 1:
        raise NoArgs("the tank is full")
    flowed = s.flowed("gallon", lambda v: 0 < v <= room)
    if flowed is not None:  # as it came: a rounded copy would be a number the user cannot know
        return {"fuelAmount": flowed}
    return {"fuelAmount": float(s.rng.randint(1, int(room)))}


def lockDoors(s: Scope) -> dict[str, Any]:  # noqa: N802
    doors = ["driver", "passenger", "rear_left", "rear_right"]
    status = _car(s).doorStatus
    unlocked = [d for d in doors if status.get(d) == "unlocked"]
    if unlocked:  # locking is what a drive needs; either form locks every door
        return {"unlock": False, "door": doors if s.chance(0.7) else unlocked}
    return {"unlock": True, "door": s.rng.sample(doors, s.rng.randint(1, 2))}


def pressBrakePedal(s: Scope) -> dict[str, Any]:  # noqa: N802
    if _car(s).engine_state == "running" and s.chance(0.3):
        return {"pedalPosition": s.pick((0.5, 0.3))}
    return {"pedalPosition": 1.0}  # fully pressed: what starting the engine needs


def releaseBrakePedal(s: Scope) -> dict[str, Any]:  # noqa: N802
    return {}


def adjustClimateControl(s: Scope) -> dict[str, Any]:  # noqa: N802
    args: dict[str, Any] = {}
    if s.chance(0.4):
        args = {"temperature": float(s.rng.randint(64, 78)), "unit": "fahrenheit"}
    else:
        args = {"temperature": float(s.rng.randint(18, 26))}
    if s.chance(0.5):
        args["fanSpeed"] = s.pick((20, 40, 50, 60, 80))
    if s.chance(0.5):
        args["mode"] = s.pick(("auto", "cool", "heat", "defrost"))
    return args


def check_tire_pressure(s: Scope) -> dict[str, Any]:
    return {}


def find_nearest_tire_shop(s: Scope) -> dict[str, Any]:
    return {}


def get_current_speed(s: Scope) -> dict[str, Any]:
    return {}


def get_outside_temperature_from_google(s: Scope) -> dict[str, Any]:
    return {}


def get_outside_temperature_from_weather_com(s: Scope) -> dict[str, Any]:
    return {}


def displayCarStatus(s: Scope) -> dict[str, Any]:  # noqa: N802
    options = (
        "fuel",
        "battery",
        "doors",
        "climate",
        "headlights",
        "parkingBrake",
        "brakePedal",
        "engine",
    )
    return {"option": s.pick(options)}


def display_log(s: Scope) -> dict[str, Any]:
    texts = [t for t in s.flow.values("text") if isinstance(t, str) and len(t) <= 120][:2]
    if not texts:
        texts = s.rng.sample(
            ["Fuel level checked", "Doors locked", "Tire pressure normal", "Engine started"], 2
        )
    return {"messages": texts}


def estimate_distance(s: Scope) -> dict[str, Any]:
    zips = s.flow.values("zipcode")
    known = [p for p in ZIPCODE_DISTANCES if set(p) <= set(zips)]
    if known:
        a, b = s.pick(known)
        if zips.index(a) < zips.index(b):
            a, b = b, a  # the earlier lookup first
        return {"cityA": a, "cityB": b}
    a, b = s.pick(ZIPCODE_DISTANCES)
    return {"cityA": a, "cityB": b} if s.chance(0.5) else {"cityA": b, "cityB": a}


def estimate_drive_feasibility_by_mileage(s: Scope) -> dict[str, Any]:
    flowed = s.flowed("distance", lambda v: v > 0)
    return {"distance": flowed if flowed is not None else float(s.rng.randrange(40, 900, 5))}


def gallon_to_liter(s: Scope) -> dict[str, Any]:
    flowed = s.flowed_into("gallon_to_liter", "gallon", ok=lambda v: 0 < v < 1000)
    return {"gallon": flowed if flowed is not None else float(s.rng.randint(2, 30))}


def liter_to_gallon(s: Scope) -> dict[str, Any]:
    room_l = (_MAX_FUEL - float(_car(s).fuelLevel)) * 3.78541
    top = max(1, min(60, int(room_l) - 1))
    return {"liter": float(s.rng.randint(1, top))}


def get_zipcode_based_on_city(s: Scope) -> dict[str, Any]:
    looked_up = {
        c.arguments.get("city") for c in s.flow.calls if c.name == "get_zipcode_based_on_city"
    }
    zips = set(s.flow.values("zipcode"))
    partners = {b if a in zips else a for a, b in ZIPCODE_DISTANCES if a in zips or b in zips}
    cities = [c for c, z in CITY_ZIPCODES.items() if c not in looked_up]
    paired = [c for c in cities if CITY_ZIPCODES[c] in partners]
    return {"city": s.pick(paired) if paired else s.pick(cities, "city")}


def set_navigation(s: Scope) -> dict[str, Any]:
    shop = s.flowed("text", lambda t: isinstance(t, str) and "," in t and len(t) < 80)
    return {
        "destination": shop
        or s.pick(
            (
                "2107 Channing Way, Berkeley, CA",
                "456 Oakwood Avenue, Rivermist, 83214",
                "100 Main Street, Stonebrook",
            )
        )
    }


def setCruiseControl(s: Scope) -> dict[str, Any]:  # noqa: N802
    return {
        "speed": float(s.pick((40, 55, 60, 65, 70))),
        "activate": True,
        "distanceToNextVehicle": float(s.pick((50, 75, 100, 150))),
    }


def setHeadlights(s: Scope) -> dict[str, Any]:  # noqa: N802
    current = _car(s).headLightStatus
    return {"mode": s.pick([m for m in ("on", "off", "auto") if m != current])}


def activateParkingBrake(s: Scope) -> dict[str, Any]:  # noqa: N802
    return {"mode": "release" if _car(s).parkingBrakeStatus == "engaged" else "engage"}


TRAVEL_SAMPLERS = {
    f.__name__: f
    for f in (
        authenticate_travel,
        travel_get_login_status,
        list_all_airports,
        get_all_credit_cards,
        get_budget_fiscal_year,
        get_nearest_airport_by_city,
        get_flight_cost,
        book_flight,
        get_credit_card_balance,
        register_credit_card,
        get_booking_history,
        retrieve_invoice,
        cancel_booking,
        contact_customer_support,
        purchase_insurance,
        compute_exchange_rate,
        set_budget_limit,
        verify_traveler_information,
    )
}
VEHICLE_SAMPLERS = {
    f.__name__: f
    for f in (
        startEngine,
        fillFuelTank,
        lockDoors,
        pressBrakePedal,
        releaseBrakePedal,
        adjustClimateControl,
        check_tire_pressure,
        find_nearest_tire_shop,
        get_current_speed,
        get_outside_temperature_from_google,
        get_outside_temperature_from_weather_com,
        displayCarStatus,
        display_log,
        estimate_distance,
        estimate_drive_feasibility_by_mileage,
        gallon_to_liter,
        liter_to_gallon,
        get_zipcode_based_on_city,
        set_navigation,
        setCruiseControl,
        setHeadlights,
        activateParkingBrake,
    )
}
