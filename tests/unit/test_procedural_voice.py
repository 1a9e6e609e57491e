"""Issue 13: the procedural writer's fixed wordings that no BFCL user writes are varied in the
register of the training split's human turns (`graphs.synthesis.procedural.voice`).

Before: every result referred to by its source read "the … you just …", every travel token
"(my access token is '…')", every travel date "on '2026-04-15'", and every look-up "look up
…"; a naive Bayes discriminator keyed on exactly these words.
"""

from __future__ import annotations

import random
from collections import Counter

from graphs.synthesis.procedural import voice
from graphs.synthesis.procedural.flow import Flow
from graphs.synthesis.procedural.writer import clause, write_queries
from rods.tasks import ToolCall

N = 200


def test_dates_read_as_people_write_them():
    rng = random.Random(0)
    forms = Counter(voice.date("2026-04-15", rng) for _ in range(N))
    assert "April 15, 2026" in forms and "the 15th of April 2026" in forms
    assert forms["2026-04-15"] < N / 3  # the ISO form is one of several, not the rule
    assert voice.date("soon", rng) == "'soon'"  # not a date: quoted as before
    assert voice.date("2026-13-40", rng) == "'2026-13-40'"


def test_ordinals():
    rng = random.Random(1)
    days = {voice.date(f"2026-01-{d:02d}", rng) for d in (1, 2, 3, 11, 12, 13, 21, 22) for _ in range(40)}
    for word in ("1st", "2nd", "3rd", "11th", "12th", "13th", "21st", "22nd"):
        assert any(word in d for d in days)


def test_a_source_is_not_always_what_you_just_did():
    rng = random.Random(2)
    forms = Counter(voice.source("the flight you just booked", rng) for _ in range(N))
    assert {"the flight you just booked", "that flight", "the flight booked earlier"} <= set(forms)
    assert forms["the flight you just booked"] < N / 2
    assert voice.source("the second stock on that list", rng) == "the second stock on that list"


def test_token_asides_vary_and_are_all_recognised():
    rng = random.Random(3)
    asides = {voice.token("'tok123'", rng) for _ in range(N)}
    assert len(asides) >= 4
    for a in asides:
        assert voice.TOKEN_ASIDE.fullmatch(a), a


def test_lead_verbs_humans_never_use_are_varied():
    rng = random.Random(4)
    leads = Counter(voice.lead("look up the ticker of Nvidia", rng).split(" the ")[0] for _ in range(N))
    assert leads["look up"] == 0 and len(leads) >= 3  # "look up" is in no training turn
    assert voice.lead("sort 'a.txt'", rng) == "sort 'a.txt'"


def test_travel_clause_states_the_date_in_words():
    call = ToolCall(
        name="get_flight_cost",
        arguments={"travel_from": "SFO", "travel_to": "LAX", "travel_date": "2026-04-15", "travel_class": "economy"},
    )
    texts = {clause(call, Flow([]), random.Random(s)) for s in range(60)}
    assert any("April" in t for t in texts)
    assert all("2026" in t for t in texts)  # the year is always said


def test_a_token_is_said_once_per_turn_whatever_its_wording():
    calls = (
        ToolCall(name="get_credit_card_balance", arguments={"access_token": "tok9", "card_id": "c1"}),
        ToolCall(name="get_booking_history", arguments={"access_token": "tok9"}),
    )
    for seed in range(40):
        (text,) = write_queries((calls,), (("{}", "{}"),), random.Random(seed))
        assert text.count("tok9") == 1, text


def test_cards_and_payments_are_said_several_ways():
    rng = random.Random(5)
    cards = {voice.card("'c1'", rng) for _ in range(N)}
    assert "the credit card with id 'c1'" in cards and len(cards) >= 3
    assert len({voice.pay(rng) for _ in range(N)}) >= 3


def test_zip_codes_are_not_always_looked_up():
    call = ToolCall(name="get_zipcode_based_on_city", arguments={"city": "Rivermist"})
    texts = [clause(call, Flow([]), random.Random(s)) for s in range(80)]
    assert sum("zip code" in t for t in texts) < len(texts) / 2
    assert all("Rivermist" in t for t in texts)


def test_stories_draw_from_many_occasions():
    from graphs.synthesis.procedural.story import OCCASIONS, Story

    projects = Counter(Story(random.Random(s)).project for s in range(2000))
    assert len(OCCASIONS) >= 50 and len(projects) >= 50
    assert max(projects.values()) / 2000 < 0.05  # no occasion in 5 % of variants


def test_no_frame_that_no_training_turn_uses():
    from graphs.synthesis.procedural.writer import _FRAMES

    prefixes = {p.strip().lower() for p, _ in _FRAMES}
    assert not prefixes & {"pls", "try to", "quickly"}  # in none of BFCL's training turns
