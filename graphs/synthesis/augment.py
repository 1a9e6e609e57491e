"""Augment: turn a verified base-shaped conversation into the seed's BFCL category.

The transformations copy what BFCL's own categories do to a base conversation (read off the
`multi_turn_miss_func_*` and `multi_turn_miss_param_*` data next to their base twins):

- miss_func: pick a turn k whose ground truth uses a function not used before k. That function
  is held out from the start: turn k keeps its question but its ground truth becomes empty (the
  model cannot do it yet and must not call), an *empty* user turn is inserted at k+1 carrying
  turn k's original ground truth, and `missed_function = {"k+1": [name, …]}` — bfcl-eval adds
  the held-out docs when it reaches that turn.
- miss_param: pick a turn k and a ground-truth argument value that its query states verbatim
  (and no other turn does). The value leaves the query as BFCL's miss_param turns leave it: the
  request simply lacks it ("tally up the words in a file", "open a support ticket") with no cue
  that it will come later, and the value appears nowhere in the turn (`withhold`); turn k's
  ground truth becomes empty (the model must ask), and a clarifying user turn in varied words
  ("The file is 'x.txt'.", "Use 'x.txt'.") is inserted at k+1 with turn k's original ground truth.
- long_context: the content is unchanged; the id takes the shape `multi_turn_long_context_…`,
  which is how bfcl-eval (and `rods.env`) decide to load each class's large long-context state.
  The ground-truth path must then read long results (`gates.check_final` rejects the final
  task otherwise; the procedural planner aims for it).
  The graph re-runs the gates on the result, so a variant that no longer executes is rejected.
- base: unchanged.

Each function returns the new task body (id left to the caller) or a reason code.
"""

from __future__ import annotations

import random
import re
from typing import Any

from rods.env.calls import CallSyntaxError, parse_python_call
from rods.tasks import Task

AUGMENT_REASONS: tuple[str, ...] = ("augment_no_function", "augment_no_value")


def _names(sources: list[str]) -> list[str]:
    out = []
    for s in sources:
        try:
            out.append(parse_python_call(s).name)
        except CallSyntaxError:
            continue
    return out


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def _body(task: Task) -> dict[str, Any]:
    return task.model_dump(mode="json", exclude={"rods"})


def _insert_turn(
    body: dict[str, Any], k: int, new_question_k: list[dict[str, str]], inserted: list[dict[str, str]]
) -> None:
    """Turn k gets `new_question_k` and an empty ground truth; `inserted` (turn k+1) gets k's."""
    gt_k = body["ground_truth"][k]
    body["question"][k] = new_question_k
    body["ground_truth"][k] = []
    body["question"].insert(k + 1, inserted)
    body["ground_truth"].insert(k + 1, gt_k)
    missed = body.get("missed_function") or {}
    if missed:
        body["missed_function"] = {str(int(u) + (int(u) > k)): v for u, v in missed.items()}


def to_miss_func(
    task: Task, rng: random.Random, prefer_turn: int | None = None, n_hidden: int = 1
) -> dict[str, Any] | str:
    used: set[str] = set()
    candidates: list[tuple[int, list[str]]] = []
    for k, sources in enumerate(task.ground_truth):
        names = _names(sources)
        fresh = [n for n in dict.fromkeys(names) if n not in used]
        if fresh:
            candidates.append((k, fresh))
        used.update(names)
    if not candidates:
        return "augment_no_function"
    if prefer_turn is None:
        k, fresh = rng.choice(candidates)
    else:
        k, fresh = min(candidates, key=lambda c: (abs(c[0] - prefer_turn), c[0]))
    hidden = rng.sample(fresh, min(max(1, n_hidden), len(fresh)))
    body = _body(task)
    _insert_turn(body, k, body["question"][k], [])
    missed = dict(body.get("missed_function") or {})
    missed[str(k + 1)] = sorted(hidden)
    body["missed_function"] = missed
    return body


def _words(param: str) -> str:
    """`comment_content` → `comment content`, `ignitionMode` → `ignition mode`."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", param).replace("_", " ")
    return spaced.lower().strip()


def _find_value(text: str, value: Any) -> tuple[int, int] | None:
    """Span of `value` in `text`: quoted if quoted, else as a whole word; None if absent."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    s = str(value)
    if len(s) < 2:  # one character (`5`, `a`) occurs by coincidence everywhere
        return None
    for quote in ("'", '"'):
        i = text.find(f"{quote}{s}{quote}")
        if i >= 0:
            return i, i + len(s) + 2
    m = re.search(rf"(?<![\w.]){re.escape(s)}(?![\w])", text)
    return (m.start(), m.end()) if m else None


# How a withheld value reads in its turn (noun phrases, one drawn), and the noun the next turn
# uses to supply it. Parameters not listed here are never withheld: no phrase says them well.
_WITHHELD: dict[str, tuple[tuple[str, ...], str]] = {
    **dict.fromkeys(
        ("file_name", "file_name1", "file_name2", "source"),
        (("a file", "one of the files", "a certain file", "the file I mean"), "file"),
    ),
    "destination": (("somewhere else", "another place", "a different spot"), "destination"),
    **dict.fromkeys(("dir_name", "folder"), (("a folder", "one of the folders", "a directory"), "folder")),
    "name": (("something", "a particular name"), "name"),
    **dict.fromkeys(("pattern", "keyword"), (("a certain word", "a keyword", "one term"), "word")),
    "content": (("some text", "a line of text"), "text"),
    "message": (("a message", "a short note"), "message"),
    "comment_content": (("a comment", "a reply"), "comment"),
    **dict.fromkeys(
        ("username_to_follow", "username_to_unfollow", "user", "user_name"),
        (("someone", "a person I know", "an account"), "name"),
    ),
    **dict.fromkeys(("symbol", "stock"), (("a stock", "one company's stock"), "stock")),
    "sector": (("one sector", "an industry"), "sector"),
    "password": (("my password",), "password"),
    "title": (("a title",), "title"),
    "description": (("some details",), "description"),
    "resolution": (("a short note",), "resolution note"),
    **dict.fromkeys(("location", "city", "cityA", "cityB"), (("a city", "one city"), "city")),
    "travel_to": (("a destination", "somewhere"), "destination"),
    "travel_date": (("a certain date", "one day"), "date"),
    **dict.fromkeys(("a", "b", "number", "value", "base", "exponent"), (("a number", "a figure"), "number")),
    "amount": (("some",), "amount"),
    "price": (("a certain price", "my target price"), "price"),
    **dict.fromkeys(("budget_limit", "insurance_cost"), (("an amount", "a sum"), "amount")),
}
# Words that introduce a value and go with it ("titled 'X'", "with the password 'p'").
_LABEL_RE = re.compile(
    r"(?:,?\s+(?:with|using)\s+the\s+(?:password|details)|,?\s+(?:titled|named|called|saying|noting)"
    r"|\s+the\s+password)\s*$"
)
# Nouns that precede an id ("ticket 3201"): replaced together with the id.
_ID_LABEL_RE = re.compile(r"\b(?:ticket|order|post|booking|card)\s+$")
_SUPPLY = (
    "The {noun} is {v}.", "It's {v}.", "Use {v}.", "Oh, the {noun} should be {v}.",
    "Sorry, I meant {v}.", "{V}, please.", "Go with {v}.", "I forgot to say: the {noun} is {v}.",
    "That would be {v}.", "Make it {v}.", "The {noun}? {V}.", "{V} is the one.", "Right, {v}.",
    "{V}.", "Should be {v}.", "My bad, {v}.", "Ah, {v}.", "Take {v}.", "I mean {v}.",
    "{V} — that's the {noun}.", "Let's say {v}.", "Pick {v}.", "Oops, {v}.", "Yes, {v}.",
    "Set the {noun} to {v}.", "Oh right, it's {v}.", "Go for {v}.", "We want {v}.",
    "Apologies, the {noun} is {v}.", "Use {v} for the {noun}.", "I left that out: {v}.",
    "Just use {v}.", "The one I want is {v}.", "{V} works.", "Please use {v}.", "It should be {v}.",
    "I'd go with {v}.", "Let me add that the {noun} is {v}.", "You can use {v}.", "For the {noun}, {v}.",
    "Okay, {v}.", "Oh, {v}.",
)  # fmt: skip


def _absent(text: str, value: Any) -> bool:
    """The value appears nowhere in the text (quoted or not, any case)."""
    s = str(value)
    if isinstance(value, str) and len(s) >= 3:
        return s.lower() not in text.lower()
    return re.search(rf"(?<![\w.]){re.escape(s)}(?![\w])", text) is None


# A folder said as a place (a `cd` the writer folded into the next clause: "sort it, inside
# 'docs'"): withheld, the turn must still ask to move, or nothing in it asks for the `cd`.
_PLACE_BACK_RE = re.compile(r"(?:,\s*over\s+in|\s+\(it's\s+in|\s+inside|\s+within|\s+in)\s+$")
_PLACE_FRONT_RE = re.compile(r"(?:^|(?<=[.!?]\s))(?:In|Over in|Inside|Within)\s+$")
_MOVES = (" after moving into a folder", " once you've gone into one of the folders",
          " after switching to a folder")  # fmt: skip
_MOVES_FRONT = ("After moving into a folder, ", "Once you've gone into one of the folders, ")


def _withhold_place(before: str, after: str, rng: random.Random) -> str | None:
    back = _PLACE_BACK_RE.search(before)
    if back is not None:
        if "(" in back.group():
            after = after[1:] if after.startswith(")") else after
        return before[: back.start()] + rng.choice(_MOVES) + after
    front = _PLACE_FRONT_RE.search(before)
    if front is not None and after.startswith(", "):
        return before[: front.start()] + rng.choice(_MOVES_FRONT) + after[2:]
    return None


def withhold(text: str, param: str, value: Any, span: tuple[int, int], rng: random.Random) -> str | None:
    """The turn's text with `value` taken out as BFCL's miss_param turns do, or None if it can't be."""
    if param not in _WITHHELD:
        return None
    a, b = span
    before, after = text[:a], text[b:]
    label = _LABEL_RE.search(before)
    place = _withhold_place(before, after, rng) if param == "folder" else None
    if place is not None:
        new = place
    elif label is not None:
        new = before[: label.start()] + after
    else:
        phrases, _ = _WITHHELD[param]
        id_label = _ID_LABEL_RE.search(before)
        if id_label is not None:
            before = before[: id_label.start()]
        before = before.removesuffix("$")
        noun = re.match(r"\s+(?:directory|folder|file)\b", after)
        if noun is not None and before.endswith("the "):  # "the 'x' directory" → "a folder"
            before, after = before[:-4], after[noun.end() :]
        new = before + rng.choice(phrases) + after
    new = re.sub(r"\s+([,.?!;])", r"\1", re.sub(r"\s{2,}", " ", new)).strip()
    return new if new and _absent(new, value) else None


def _list_items(sources: list[str]) -> set[Any]:
    out: set[Any] = set()
    for source in sources:
        try:
            call = parse_python_call(source)
        except CallSyntaxError:
            continue
        for value in call.kwargs.values():
            if isinstance(value, list):
                out.update(v for v in value if isinstance(v, str))
    return out


def to_miss_param(task: Task, rng: random.Random, prefer_turn: int | None = None) -> dict[str, Any] | str:
    texts = [" ".join(m.content for m in msgs) for msgs in task.question]
    candidates: list[tuple[int, str, Any, tuple[int, int]]] = []
    for k, sources in enumerate(task.ground_truth):
        listed = _list_items(sources)  # a value said inside a list is not withheld alone
        for source in sources:
            try:
                call = parse_python_call(source)
            except CallSyntaxError:
                continue
            for param, value in call.kwargs.items():
                if isinstance(value, str) and value in listed:
                    continue
                span = _find_value(texts[k], value)
                elsewhere = any(
                    _find_value(t, value) for j, t in enumerate(texts) if j != k
                )
                if span is not None and not elsewhere and param in _WITHHELD:
                    candidates.append((k, param, value, span))
    rng.shuffle(candidates)
    if prefer_turn is not None:
        candidates.sort(key=lambda c: abs(c[0] - prefer_turn))
    for k, param, value, span in candidates:
        vague = withhold(texts[k], param, value, span, rng)
        if vague is None:
            continue
        shown = f"'{value}'" if isinstance(value, str) else str(value)
        noun = _WITHHELD[param][1]
        supply = rng.choice(_SUPPLY)
        supply = supply.replace("{V}", shown[:1].upper() + shown[1:]).format(noun=noun, v=shown)
        body = _body(task)
        _insert_turn(body, k, _user(vague), _user(supply))
        return body
    return "augment_no_value"


def augment_body(
    task: Task, category: str, rng: random.Random, seed: Task | None = None
) -> dict[str, Any] | str:
    """The body of `task` transformed into `category` (see the module docstring), or a reason.

    With a `seed`, the held-out / clarification turn is placed as close as possible to the
    seed's, and as many functions are held out as the seed holds out.
    """
    if category == "miss_func":
        prefer, n_hidden = None, 1
        if seed is not None and seed.missed_function:
            u, names = next(iter(seed.missed_function.items()))
            prefer, n_hidden = int(u) - 1, len(names)
        return to_miss_func(task, rng, prefer, n_hidden)
    if category == "miss_param":
        prefer = None
        if seed is not None:
            empty = [u for u, g in enumerate(seed.ground_truth) if not g and u + 1 < seed.n_turns]
            prefer = empty[-1] if empty else None
        return to_miss_param(task, rng, prefer)
    return _body(task)


def name_long_entries(task: Task) -> Task:
    """long_context: a value the ground truth takes from deep inside a long result (the fare
    at entry 51 of 153 quoted prices) is named by its position in the turn that uses it, so
    the reader can still single it out (`rods.semantics`: `semantic_unidentifiable_reference`).
    Returns the task unchanged when nothing needs naming; the gates run again on the result."""
    from rods.semantics import semantic_findings

    deep = [
        f
        for f in semantic_findings(task)
        if f.code == "semantic_unidentifiable_reference" and f.position is not None and f.turn >= 0
    ]
    if not deep:
        return task
    question = [list(msgs) for msgs in task.question]
    for f in sorted({(f.turn, f.position, f.of) for f in deep}):
        turn, pos, of = f
        cue = f" (that is entry {pos + 1} of the {of} in that list)"  # type: ignore[operator]
        users = [i for i, m in enumerate(question[turn]) if m.role == "user"]
        if not users:
            continue
        i = users[-1]
        question[turn][i] = question[turn][i].model_copy(
            update={"content": question[turn][i].content.rstrip() + cue}
        )
    return task.model_copy(update={"question": question})
