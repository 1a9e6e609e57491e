"""Value pools for varied worlds and turns: people, accounts, file names, texts, figures.

Every pool is combinatorial (a few word lists multiplied), so a value recurs in well under 5 % of
variants (issue 13: "no value or phrase in more than 5 % of variants"). The words are ordinary
English written for this module; nothing is copied from BFCL's tasks. All draws take an explicit
`random.Random`, so a variant is reproducible from its rng seed.
"""

from __future__ import annotations

import random
import string

FIRST = (
    "Amara Bianca Carlos Dmitri Elena Farah Gustavo Hana Ibrahim Jonas Keiko Lars Maya Nadia "
    "Omar Priya Quentin Rosa Samir Tamsin Uma Viktor Wen Ximena Yusuf Zoe Aiden Beatriz Chidi "
    "Daria Emil Fiona Goran Helga Isaac Jana Kofi Leila Mateo Noor Oskar Paulina Rafael Selma "
    "Teodor Ursula Vera Wiremu Yara Zainab Anton Celeste Dario Esme Felix Greta Hugo Ines"
).split()
LAST = (
    "Abara Berg Castillo Dubois Eriksen Fontaine Gallagher Haddad Iverson Jovanovic Kaur Lindqvist "
    "Moreau Nakamura Okafor Petrov Quiroga Rahman Sato Tanaka Ueda Varga Whitfield Xu Yilmaz "
    "Zielinski Andersen Brennan Carvalho Delgado Engel Farouk Grant Horvath Ito Kowalski Lindgren "
    "Mensah Novak Ortega Park Rossi Schmidt Torres Vogel Walsh Young Ziegler Achebe Baptiste"
).split()
_ADJ = (
    "quarterly annual weekly draft final revised old new shared private team client internal "
    "spring autumn summer winter pending archived urgent monthly raw clean sorted nightly"
).split()
_NOUN = (
    "budget summary notes report invoice roadmap schedule checklist minutes survey inventory "
    "proposal forecast backlog ledger timeline manifest roster agenda memo contract estimate "
    "review metrics findings outline playlist recipes itinerary expenses"
).split()
_EXT = ("txt", "md", "csv", "log", "docx", "pdf", "json", "py")
_DIR = (
    "projects assets exports imports staging media research drafts clients billing reviews "
    "photos scripts fixtures templates travel receipts labs backups logs datasets lectures "
    "designs contracts campaigns"
).split()
_SUBJ = (
    "The vendor|Our team|The new intern|Marketing|The client|Finance|The board|Support|"
    "The warehouse|Engineering|The landlord|Our auditor|The design group|The night shift|"
    "The caterer|Legal|The volunteer crew|The lab|Procurement|The tour operator"
).split("|")
_VERB = (
    "approved|flagged|postponed|finished|rejected|requested|rescheduled|signed off on|"
    "questioned|updated|shipped|reviewed|priced|drafted|cancelled|confirmed|reworked|"
    "paused|summarised|double-checked"
).split("|")
OBJ = (
    "the spring order|the venue booking|the payroll batch|the server migration|the logo refresh|"
    "the safety audit|the grant application|the stock count|the website copy|the training plan|"
    "the lease renewal|the sample shipment|the beta release|the insurance claim|the price list|"
    "the customer survey|the travel plan|the kitchen remodel|the data export|the launch event"
).split("|")
_WHEN = (
    "on Monday|before noon|last week|this morning|after the review|by Friday|overnight|"
    "yesterday|ahead of schedule|at the last minute|during the call|for the third time|"
    "without notice|as planned|after lunch|two days late"
).split("|")
_TOPIC = (
    "supply chain|remote work|city cycling|home baking|indie games|solar power|jazz history|"
    "trail running|urban gardens|chess openings|data privacy|ocean science|street food|"
    "vintage cameras|language learning|board games|space probes|coffee roasting"
).split("|")


def person(rng: random.Random) -> tuple[str, str]:
    return rng.choice(FIRST), rng.choice(LAST)


def username(rng: random.Random, first: str | None = None) -> str:
    stem = (first or rng.choice(FIRST)).lower()
    tail = rng.choice(_NOUN + _ADJ + [w.lower() for w in LAST])
    sep = rng.choice(("_", "", ".", "_"))
    return f"{stem}{sep}{tail}{rng.randrange(10, 999) if rng.random() < 0.6 else ''}"


def password(rng: random.Random) -> str:
    chars = string.ascii_letters + string.digits
    body = "".join(rng.choice(chars) for _ in range(rng.randrange(8, 13)))
    return body[:4] + rng.choice("!#$%&*@") + body[4:]


def token(rng: random.Random, n: int = 12) -> str:
    return "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(n))


def digits(rng: random.Random, n: int) -> str:
    return str(rng.randrange(1, 10)) + "".join(str(rng.randrange(10)) for _ in range(n - 1))


def file_name(rng: random.Random, ext: str | None = None) -> str:
    stem = f"{rng.choice(_ADJ)}_{rng.choice(_NOUN)}" if rng.random() < 0.7 else rng.choice(_NOUN)
    if rng.random() < 0.3:
        stem += f"_{rng.randrange(2019, 2027)}"
    return f"{stem}.{ext or rng.choice(_EXT)}"


def dir_name(rng: random.Random) -> str:
    base = rng.choice(_DIR)
    r = rng.random()
    if r < 0.35:
        return f"{rng.choice(_ADJ)}_{base}"
    if r < 0.5:
        return f"{base}_{rng.randrange(2019, 2027)}"
    return base


def sentence(rng: random.Random) -> str:
    return f"{rng.choice(_SUBJ)} {rng.choice(_VERB)} {rng.choice(OBJ)} {rng.choice(_WHEN)}."


def short_text(rng: random.Random) -> str:
    """A post or message body (under 120 characters)."""
    r = rng.random()
    if r < 0.4:
        return sentence(rng)
    if r < 0.7:
        return f"Thoughts on {rng.choice(_TOPIC)}: {rng.choice(_VERB)} {rng.choice(OBJ)} {rng.choice(_WHEN)}."
    return f"Reminder: {rng.choice(OBJ)} is {rng.choice(('due', 'done', 'late', 'on hold', 'moving'))} {rng.choice(_WHEN)}."


def tags(rng: random.Random) -> list[str]:
    words = rng.sample(_NOUN + [t.split()[0] for t in _TOPIC], rng.randrange(1, 3))
    return [f"#{w}" for w in words]


def title(rng: random.Random) -> str:
    return f"{rng.choice(OBJ).removeprefix('the ').capitalize()} {rng.choice(('issue', 'problem', 'request', 'question', 'error', 'delay'))}"


def figure(rng: random.Random, low: float, high: float, places: int = 2) -> float:
    return round(rng.uniform(low, high), places)


def resolution(rng: random.Random) -> str:
    how = ("after a restart", "by resetting the account", "with a config change", "once the vendor patched it",
           "by reinstalling the app", "after clearing the cache", "with a manual refund", "by the network team")
    return f"{rng.choice(('Fixed', 'Resolved', 'Sorted out', 'Handled', 'Cleared up'))} {rng.choice(how)}."


def support_message(rng: random.Random) -> str:
    ask = ("change my seat", "add a checked bag", "move my flight a day later", "get a receipt for",
           "confirm the meal options on", "upgrade my seat on", "check the baggage rules for",
           "ask about the refund policy of", "add a travel companion to", "fix the name spelling on")
    return f"Could you help me {rng.choice(ask)} this booking? {rng.choice(('Thanks.', 'It is urgent.', 'No rush.', 'Please call me back.', ''))}".strip()
