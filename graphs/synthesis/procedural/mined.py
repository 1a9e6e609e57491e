"""Turn patterns mined from the human-written turns of BFCL's TRAINING split (never evaluation).

Issue 13 allows "clause patterns with their values replaced" learned from the training split's
human turns. A training turn whose ground truth is one call (not a clarification turn), and whose text states every
argument of that call that is said at all, becomes a pattern for that function: each stated
value is replaced by a slot, and the arguments the text does not state (`mode='w'`, `lines=1`,
an enum said in words) become requirements, so the pattern is used only for a call with the same
values there. A pattern keeps no other quoted text and no other digits (a value of the original
scenario would leak into a new one). Mined once per process from `rods.tasks.load_split("train")`
(the held-out ids are never read); no file is committed.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from rods.env.calls import CallSyntaxError, parse_python_call
from rods.tasks import load_split

MAX_CHARS = 320  # longer turns carry too much of their own scenario
_QUOTED = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"")
_ACRONYM = re.compile(r"\b[A-Z]{2,}\b")  # LAX, NVDA, USD: values of the original scenario
# A capitalised word inside a sentence: a name of the original scenario (Bob, Michael, Berkeley)
_NAME_INSIDE = re.compile(r"(?<=[a-z,;:] )[A-Z][a-z]+")


@functools.cache
def _places_and_firms() -> frozenset[str]:
    """Lower-cased names the simulators know (cities, companies): one word of each."""
    from graphs.synthesis.procedural.scope import CITY_ZIPCODES, city_airports, company_symbols

    names = (*CITY_ZIPCODES, *city_airports(), *company_symbols())
    return frozenset(w.lower() for n in names for w in n.split() if len(w) > 3)


@dataclass(frozen=True)
class Pattern:
    text: str  # the turn with `{param}` slots (braces in the original are dropped)
    slots: frozenset[str]  # parameters named in the text
    fixed: tuple[tuple[str, Any], ...]  # parameters not said: the call must have these values
    source: str  # the training task it came from (kept out of its own variants)


def _span(text: str, value: Any) -> tuple[int, int] | None:
    """Where a value is stated: quoted first, else as a whole word (case kept)."""
    s = str(value)
    if isinstance(value, float) and value.is_integer():
        s = str(int(value))
    if len(s) < 2:
        return None
    for q in ("'", '"'):
        i = text.find(f"{q}{s}{q}")
        if i >= 0:
            return i, i + len(s) + 2
    m = re.search(rf"(?<![\w.']){re.escape(s)}(?![\w'])", text)
    return (m.start(), m.end()) if m else None


def pattern_of(text: str, name: str, kwargs: dict[str, Any], source: str) -> Pattern | None:
    """The pattern of one single-call human turn, or None when it cannot be reused safely."""
    text = text.replace("{", "").replace("}", "").strip()
    if not text or len(text) > MAX_CHARS:
        return None
    spans: list[tuple[int, int, str]] = []
    fixed: list[tuple[str, Any]] = []
    for param, value in kwargs.items():
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            span = _span(text, value)
            if span is not None:
                spans.append((*span, param))
                continue
        fixed.append((param, value))
    spans.sort()
    if any(a < prev_b for (a, _, _), (_, prev_b, _) in zip(spans[1:], spans, strict=False)):
        return None  # overlapping values
    out, last = [], 0
    for a, b, param in spans:
        out.append(text[last:a] + "{" + param + "}")
        last = b
    out.append(text[last:])
    templ = "".join(out)
    rest = re.sub(r"\{\w+\}", "", templ)
    if _QUOTED.search(rest) or re.search(r"\d", rest) or _ACRONYM.search(rest):
        return None  # another value of the original scenario would leak
    if any(w.strip(".,?!;:'\"").lower() in _places_and_firms() for w in rest.split()):
        return None  # a city, airport or company of the original scenario
    if _NAME_INSIDE.search(rest):
        return None  # a person or place of the original scenario ("after Bob has received it")
    return Pattern(templ, frozenset(p for _, _, p in spans), tuple(sorted(fixed, key=str)), source)


@functools.cache
def patterns() -> dict[str, tuple[Pattern, ...]]:
    """Function name -> patterns mined from the training split's single-call human turns."""
    out: dict[str, dict[str, Pattern]] = {}
    for task in load_split("train"):
        for u, (msgs, sources) in enumerate(zip(task.question, task.ground_truth, strict=True)):
            if len(sources) != 1 or len(msgs) != 1 or msgs[0].role != "user":
                continue
            if u and not task.ground_truth[u - 1]:
                continue  # a clarification ("The stock is 'X'."), not a request on its own
            try:
                call = parse_python_call(sources[0])
            except CallSyntaxError:
                continue
            if call.args:
                continue
            found = pattern_of(msgs[0].content, call.name, call.kwargs, task.id)
            if found is not None:
                out.setdefault(call.name, {}).setdefault(found.text, found)
    return {name: tuple(by_text.values()) for name, by_text in out.items()}


def scenario(task_id: str) -> str:
    """`multi_turn_miss_param_12` -> `12`: the four categories share a scenario index."""
    return task_id.rsplit("_", 1)[-1]


def matching(name: str, arguments: dict[str, Any], avoid: str = "") -> list[Pattern]:
    """Patterns for this call: every argument it states is a slot, every other one is fixed to
    the call's value; patterns of the `avoid` scenario (the variant's own seed) are left out."""
    said = {
        k for k, v in arguments.items() if isinstance(v, str | int | float) and not isinstance(v, bool)
    }
    out = []
    for p in patterns().get(name, ()):
        if avoid and scenario(p.source) == avoid:
            continue
        if not p.slots <= said:
            continue
        fixed = dict(p.fixed)
        if any(arguments.get(k, _MISSING) != v for k, v in fixed.items()):
            continue
        if said - p.slots - set(fixed):
            continue  # the call has a value the pattern would not say
        out.append(p)
    return out


_MISSING = object()
