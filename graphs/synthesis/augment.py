"""Augment: turn a verified base-shaped conversation into the seed's BFCL category.

The transformations copy what BFCL's own categories do to a base conversation (read off the
`multi_turn_miss_func_*` and `multi_turn_miss_param_*` data next to their base twins):

- miss_func: pick a turn k whose ground truth uses a function not used before k. That function
  is held out from the start: turn k keeps its question but its ground truth becomes empty (the
  model cannot do it yet and must not call), an *empty* user turn is inserted at k+1 carrying
  turn k's original ground truth, and `missed_function = {"k+1": [name, …]}` — bfcl-eval adds
  the held-out docs when it reaches that turn.
- miss_param: pick a turn k and a ground-truth argument value that its query states verbatim
  (and no other turn does). The value is cut from the query, turn k's ground truth becomes
  empty (the model must ask), and a clarifying user turn ("The file name should be 'x.txt'.")
  is inserted at k+1 with turn k's original ground truth.
- long_context: the content is unchanged; the id takes the shape `multi_turn_long_context_…`,
  which is how bfcl-eval (and `rods.env`) decide to load each class's large long-context state.
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


def to_miss_param(task: Task, rng: random.Random, prefer_turn: int | None = None) -> dict[str, Any] | str:
    texts = [" ".join(m.content for m in msgs) for msgs in task.question]
    candidates: list[tuple[int, str, Any, tuple[int, int]]] = []
    for k, sources in enumerate(task.ground_truth):
        for source in sources:
            try:
                call = parse_python_call(source)
            except CallSyntaxError:
                continue
            for param, value in call.kwargs.items():
                span = _find_value(texts[k], value)
                elsewhere = any(
                    _find_value(t, value) for j, t in enumerate(texts) if j != k
                )
                if span is not None and not elsewhere:
                    candidates.append((k, param, value, span))
    if not candidates:
        return "augment_no_value"
    if prefer_turn is None:
        k, param, value, (a, b) = rng.choice(candidates)
    else:
        best = min(abs(c[0] - prefer_turn) for c in candidates)
        k, param, value, (a, b) = rng.choice([c for c in candidates if abs(c[0] - prefer_turn) == best])
    words = _words(param)
    text = texts[k]
    vague = f"{text[:a]}a {words} I will specify{text[b:]}"
    shown = f"'{value}'" if isinstance(value, str) else str(value)
    body = _body(task)
    _insert_turn(body, k, _user(vague), _user(f"The {words} should be {shown}."))
    return body


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
