"""Deterministic critique gates: each takes a task and returns rejection reason codes (empty = pass).

Gates (the paper's critique, deterministic part):
- `reexec_failed`, `gt_call_error`: the ground truth, executed in a fresh simulator, parses,
  binds, raises no error and reproduces itself — every turn succeeds under `score_calls` with
  the ground truth as the model's calls (per-turn states and results equal).
- `func_unavailable`: a ground-truth call uses a function that is not a method of an involved
  class, or a miss_func holdout before the turn that reveals it.
- `string_too_long`, `list_too_long`: ground-truth arguments within the size limits.
- `query_empty`, `query_names_function`, `query_names_parameter`, `query_leaks_reasoning`:
  user turns are natural language: non-empty (except a miss_func reveal turn), naming no
  code-like function or parameter name, and no "Step 1:" style reasoning.
- `semantic_*`: the meaning holds (`rods.semantics`, the same pure gate that task files and
  `buffer import` pass): every flowed value's kind, unit and currency match the parameter it
  fills, every reference can be identified, no user turn states a value before a call computes it.
- `signature_far`: structural distance to the seed above the tolerance.
- `pool_duplicate`, `eval_duplicate`: shingled Jaccard of (user turns + ground truth) at or above
  a threshold with a pool task or a held-out evaluation task (contamination guard).

Checks of the final task (`check_final`, after augment; the paper's order stays critique, then
augment, and these run with the gates above once more on what is staged):
- miss_param, per clarification turn u (calls, after the empty turn k = u - 1; none at all is
  `final_miss_param_shape`): the values the turn supplies are the ground-truth argument values
  of turn u that its message states (strings case-insensitively as whole words, numbers also
  written `5,000` or `5000.0`, numeric strings also as numbers). None stated is
  `final_miss_param_unsupplied` (BFCL's own users sometimes supply a value indirectly, "Nvidia"
  for NVDA, in 32 of the 101 training clarification turns; a synthetic turn must state it so
  that this check can see it); every supplied value already in turn k's message is
  `final_miss_param_leak` (nothing was withheld; BFCL's training data: 3 of 101); a cue that
  announces the gap ("I will specify", `audit_text.KNOWN_CUES`) in turn k is `final_miss_param_cue`.
- miss_func, per entry r of `missed_function`: turn r's message empty, r > 0 and turn r - 1's
  ground truth empty (the model cannot do it yet), else `final_miss_func_shape`; no hidden
  function called before r or named in a user message before r (code-like names, or `name(`),
  else `final_miss_func_visible`; some hidden function called at turn r or later, else
  `final_miss_func_unused` (BFCL's training data: 1 of 100).
- long_context: the longest tool result on the ground-truth path exceeds that of the same task
  in the normal (base) world by more than `min_long_gain` characters (200), else
  `final_long_context_short` (BFCL's training data: 85 of 100 pass, median gain 3,400).

"Code-like" names: a function or parameter name containing `_` or an inner capital
(`post_tweet`, `ignitionMode`). Plain-word names (`cd`, `sort`, `content`) cannot be told apart
from ordinary words and are not checked; a call written as `name(` is always rejected.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import cache, lru_cache
from typing import Any

from graphs.synthesis.audit_text import KNOWN_CUES
from graphs.synthesis.patches import error_message
from rods.env.calls import CallSyntaxError, parse_python_call
from rods.env.reward import GroundTruthCache, score_calls
from rods.env.world import World
from rods.semantics import SEMANTIC_CODES, SOFT_CODES, semantic_rejections
from rods.signature import (
    STRUCTURE_WEIGHTS,
    DistanceWeights,
    Haystack,
    execute_calls,
    normalize_text,
    signature_distance,
)
from rods.tasks import Signature, Task, function_docs, load_split

REJECTION_REASONS: tuple[str, ...] = (
    "reexec_failed",
    "gt_call_error",
    "func_unavailable",
    "string_too_long",
    "list_too_long",
    "query_empty",
    "query_names_function",
    "query_names_parameter",
    "query_leaks_reasoning",
    "signature_far",
    "pool_duplicate",
    "eval_duplicate",
    # the meaning holds (rods.semantics): kinds agree, references identifiable, no value told early
    *(c for c in SEMANTIC_CODES if c not in SOFT_CODES),
    "judge_rejected",
    "judge_no_verdict",
    "augment_no_function",  # miss_func: no turn introduces a new function
    "augment_no_value",  # miss_param: no query states an argument value verbatim
    *(
        FINAL_REASONS := (
            "final_miss_param_shape",  # no turn with calls after an empty turn
            "final_miss_param_unsupplied",  # the clarification turn states no value of its calls
            "final_miss_param_leak",  # every value it supplies is already in the incomplete turn
            "final_miss_param_cue",  # the incomplete turn announces the gap ("I will specify")
            "final_miss_func_shape",  # reveal turn not empty, or the turn before it has calls
            "final_miss_func_visible",  # a hidden function called or named before its turn
            "final_miss_func_unused",  # no hidden function is called from its turn on
            "final_long_context_short",  # no ground-truth result longer than in the base world
        )
    ),
)

_REASONING_RE = re.compile(
    r"(?i)(\bstep\s*\d+\s*[:.)]|<\s*/?\s*think\s*>|\blet'?s think\b|\bchain of thought\b|\breasoning\s*:)"
)
_WORD_RE = re.compile(r"[a-z0-9]+")
_SHINGLE = 3  # words per shingle: long enough that shared vocabulary alone does not match


def _code_like(name: str) -> bool:
    return "_" in name.strip("_") or re.search(r"[a-z][A-Z]", name) is not None


@cache
def _class_names() -> dict[str, tuple[frozenset[str], frozenset[str]]]:
    """Per class: its function names and its parameter names."""
    out = {}
    for cls, docs in function_docs().items():
        funcs = frozenset(d["name"] for d in docs)
        params = frozenset(p for d in docs for p in d.get("parameters", {}).get("properties", {}))
        out[cls] = (funcs, params)
    return out


def task_functions(task: Task) -> tuple[frozenset[str], frozenset[str]]:
    names = _class_names()
    funcs = frozenset().union(*(names[c][0] for c in task.involved_classes))
    params = frozenset().union(*(names[c][1] for c in task.involved_classes))
    return funcs, params


# ---------------------------------------------------------------- execution gates


def check_reexecution(task: Task, cache: GroundTruthCache) -> list[str]:
    """The ground truth executes cleanly and reproduces itself in a fresh simulator."""
    rt = cache.runtime(task)
    gt = rt.ground_truth
    if gt.problems:
        return ["reexec_failed"]
    if any(error_message(r) for turn in gt.turns for r in turn.results):
        return ["gt_call_error"]
    score = score_calls(task, [list(t.calls) for t in gt.turns], cache)
    return [] if score.correct and all(score.turn_success) else ["reexec_failed"]


def check_availability(task: Task) -> list[str]:
    """Every ground-truth call names a function of an involved class, visible in its turn."""
    funcs, _ = task_functions(task)
    revealed_at = {f: int(u) for u, names in (task.missed_function or {}).items() for f in names}
    for u, sources in enumerate(task.ground_truth):
        for source in sources:
            try:
                name = parse_python_call(source).name
            except CallSyntaxError:
                return ["reexec_failed"]
            if name not in funcs or revealed_at.get(name, 0) > u:
                return ["func_unavailable"]
    return []


def _leaves(value: Any) -> Iterable[Any]:
    yield value
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _leaves(v)


def check_argument_limits(task: Task, max_chars: int = 200, max_items: int = 5) -> list[str]:
    reasons: set[str] = set()
    for sources in task.ground_truth:
        for source in sources:
            try:
                call = parse_python_call(source)
            except CallSyntaxError:
                reasons.add("reexec_failed")
                continue
            for arg in (*call.args, *call.kwargs.values()):
                for leaf in _leaves(arg):
                    if isinstance(leaf, str) and len(leaf) > max_chars:
                        reasons.add("string_too_long")
                    if isinstance(leaf, list | tuple) and len(leaf) > max_items:
                        reasons.add("list_too_long")
    return sorted(reasons)


# ---------------------------------------------------------------- query gates


@lru_cache(maxsize=256)  # one entry per set of involved classes
def _name_patterns(
    funcs: frozenset[str], params: frozenset[str]
) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None, re.Pattern[str] | None]:
    """One alternation per check (compiled once per class set): a call `f(` of any function, a
    code-like function name, a code-like parameter name. An alternation matches wherever one of
    its names would (the engine backtracks into the next name), so it finds exactly what a
    search per name finds, at one C-level scan per text instead of one per name."""

    def either(names: Iterable[str], tail: str) -> re.Pattern[str] | None:
        alts = "|".join(re.escape(n) for n in sorted(names))
        return re.compile(rf"\b(?:{alts}){tail}") if alts else None

    return (
        either(funcs, r"\s*\("),
        either((f for f in funcs if _code_like(f)), r"\b"),
        either((p for p in params if _code_like(p)), r"\b"),
    )


def check_query_text(text: str, funcs: Iterable[str], params: Iterable[str]) -> list[str]:
    """Reasons one user message is not a natural request."""
    reasons = []
    if _REASONING_RE.search(text):
        reasons.append("query_leaks_reasoning")
    called, named, param = _name_patterns(frozenset(funcs), frozenset(params))
    if (called is not None and called.search(text)) or (named is not None and named.search(text)):
        reasons.append("query_names_function")
    if param is not None and param.search(text):
        reasons.append("query_names_parameter")
    return reasons


def check_queries(task: Task) -> list[str]:
    funcs, params = task_functions(task)
    reveal_turns = {int(u) for u in (task.missed_function or {})}
    reasons: set[str] = set()
    for u, messages in enumerate(task.question):
        text = "\n".join(m.content for m in messages if m.role == "user")
        if not text.strip():
            if u not in reveal_turns:
                reasons.add("query_empty")
            continue
        reasons.update(check_query_text(text, funcs, params))
    return sorted(reasons)


def check_signature(
    signature: Signature,
    seed_signature: Signature,
    tolerance: float,
    weights: DistanceWeights = STRUCTURE_WEIGHTS,
) -> list[str]:
    return (
        []
        if signature_distance(signature, seed_signature, weights) <= tolerance
        else ["signature_far"]
    )


# ---------------------------------------------------------------- near-duplicates


def shingles(task: Task) -> frozenset[int]:
    """Hashed word 3-grams of the user turns and of the ground-truth calls (separately)."""
    out: set[int] = set()
    texts = [" ".join(m.content for m in msgs) for msgs in task.question]
    texts += [" ".join(gt) for gt in task.ground_truth]
    for text in texts:
        words = _WORD_RE.findall(text.lower())
        for i in range(max(1, len(words) - _SHINGLE + 1)):
            gram = " ".join(words[i : i + _SHINGLE])
            if gram:
                out.add(int.from_bytes(hashlib.blake2b(gram.encode(), digest_size=8).digest()))
    return frozenset(out)


def jaccard(a: frozenset[int], b: frozenset[int]) -> float:
    shared = len(a & b)  # |a ∪ b| from the sizes: no union set is built
    union = len(a) + len(b) - shared
    return shared / union if union else 0.0


class DedupIndex:
    """Shingle sets of known tasks; `nearest` finds the most similar one (exact Jaccard).

    Exact Jaccard over a few thousand sets of ~100–300 shingles is milliseconds, so no MinHash
    approximation is needed at pool sizes (≤ 800 active + staged). Thread-safe.
    """

    def __init__(self, tasks: Iterable[Task] = (), threshold: float = 0.5):
        self.threshold = threshold
        self._items: list[tuple[str, frozenset[int]]] = []
        self._lock = threading.Lock()
        for t in tasks:
            self.add(t)

    def __len__(self) -> int:
        return len(self._items)

    def add(self, task: Task) -> None:
        item = (task.id, shingles(task))
        with self._lock:
            self._items.append(item)

    def copy(self) -> DedupIndex:
        out = DedupIndex(threshold=self.threshold)
        with self._lock:
            out._items = list(self._items)
        return out

    def nearest(self, task: Task, exclude: Sequence[str] = ()) -> tuple[str | None, float]:
        mine = shingles(task)
        with self._lock:
            items = list(self._items)
        best: tuple[str | None, float] = (None, 0.0)
        for key, theirs in items:
            if key in exclude:
                continue
            sim = jaccard(mine, theirs)
            if sim > best[1]:
                best = (key, sim)
        return best

    def is_duplicate(self, task: Task, exclude: Sequence[str] = ()) -> bool:
        return self.nearest(task, exclude)[1] >= self.threshold


@cache
def _eval_index(threshold: float) -> DedupIndex:
    return DedupIndex(load_split("eval"), threshold)


def eval_index(threshold: float = 0.5) -> DedupIndex:
    """The contamination guard: an index of the 400 held-out tasks, built once per process."""
    return _eval_index(threshold)


def run_gates(
    task: Task,
    cache: GroundTruthCache,
    *,
    seed_signature: Signature | None = None,
    signature: Signature | None = None,
    tolerance: float = 0.15,
    weights: DistanceWeights = STRUCTURE_WEIGHTS,
    pool: DedupIndex | None = None,
    evals: DedupIndex | None = None,
    max_chars: int = 200,
    max_items: int = 5,
) -> list[str]:
    """All deterministic gates; the sorted distinct reasons (empty: the task passes)."""
    reasons: Counter[str] = Counter()
    reasons.update(check_queries(task))
    reasons.update(check_argument_limits(task, max_chars, max_items))
    reasons.update(check_availability(task))
    if not reasons.keys() & {"reexec_failed", "func_unavailable"}:
        reasons.update(check_reexecution(task, cache))
    if not reasons.keys() & {"reexec_failed", "func_unavailable", "gt_call_error"}:
        reasons.update(semantic_rejections(task))
    if seed_signature is not None and signature is not None:
        reasons.update(check_signature(signature, seed_signature, tolerance, weights))
    if pool is not None and pool.is_duplicate(task, exclude=(task.id,)):
        reasons["pool_duplicate"] += 1
    if evals is not None and evals.is_duplicate(task, exclude=(task.id,)):
        reasons["eval_duplicate"] += 1
    return sorted(reasons)


# ---------------------------------------------------------------- the final task, per category


def _user_text(task: Task, u: int) -> str:
    return " ".join(m.content for m in task.question[u] if m.role == "user").strip()


def _call_values(sources: Iterable[str]) -> list[str | float]:
    """Argument values of calls as atoms: strings (2+ alphanumerics) normalised, and as a number
    when they read as one; numbers as floats; lists and dict values walked."""
    out: list[str | float] = []
    for source in sources:
        try:
            call = parse_python_call(source)
        except CallSyntaxError:
            continue
        for leaf in _leaves([*call.args, *call.kwargs.values()]):
            if isinstance(leaf, bool) or leaf is None or isinstance(leaf, list | tuple | dict):
                continue
            if isinstance(leaf, int | float):
                out.append(float(leaf))
            elif isinstance(leaf, str) and sum(c.isalnum() for c in leaf) >= 2:
                out.append(normalize_text(leaf))
                try:
                    out.append(float(leaf.replace(",", "")))
                except ValueError:
                    pass
    return out


def check_final_miss_param(task: Task) -> list[str]:
    gt = task.ground_truth
    turns = [u for u in range(1, len(gt)) if gt[u] and not gt[u - 1]]
    if not turns:
        return ["final_miss_param_shape"]
    reasons: set[str] = set()
    for u in turns:
        asked, answer = _user_text(task, u - 1), _user_text(task, u)
        said_then, said_now = Haystack.of([asked]), Haystack.of([answer])
        supplied = [v for v in _call_values(gt[u]) if said_now.has(v)]
        if not supplied:
            reasons.add("final_miss_param_unsupplied")
        elif all(said_then.has(v) for v in supplied):
            reasons.add("final_miss_param_leak")
        if any(cue in normalize_text(asked) for cue in KNOWN_CUES):
            reasons.add("final_miss_param_cue")
    return sorted(reasons)


def check_final_miss_func(task: Task) -> list[str]:
    if not task.missed_function:
        return ["final_miss_func_shape"]
    funcs, _ = task_functions(task)
    reasons: set[str] = set()
    names_per_turn = [
        {c.name for c in (_parsed(s) for s in sources) if c is not None} for sources in task.ground_truth
    ]
    for key, hidden in task.missed_function.items():
        r = int(key)
        if r <= 0 or r >= task.n_turns or _user_text(task, r) or task.ground_truth[r - 1]:
            reasons.add("final_miss_func_shape")
            continue
        called_before = set().union(*names_per_turn[:r])
        said_before = "\n".join(_user_text(task, u) for u in range(r))
        named = check_query_text(said_before, [f for f in hidden if f in funcs], ())
        if called_before & set(hidden) or "query_names_function" in named:
            reasons.add("final_miss_func_visible")
        if not set().union(*names_per_turn[r:]) & set(hidden):
            reasons.add("final_miss_func_unused")
    return sorted(reasons)


def _parsed(source: str) -> Any:
    try:
        return parse_python_call(source)
    except CallSyntaxError:
        return None


def longest_result(task: Task, cache: GroundTruthCache | None = None) -> int:
    """The longest tool result on the executed ground-truth path (fresh simulators)."""
    if cache is not None:
        turns = cache.runtime(task).ground_truth.turns
        return max((len(r) for t in turns for r in t.results), default=0)
    return max((len(c.result) for c in execute_calls(task, World.load(task))), default=0)


def check_final_long_context(
    task: Task, cache: GroundTruthCache | None = None, min_long_gain: int = 200
) -> list[str]:
    base = task.model_copy(update={"id": task.id.replace("_long_context_", "_base_", 1)})
    gain = longest_result(task, cache) - longest_result(base)
    return [] if gain > min_long_gain else ["final_long_context_short"]


def check_final(task: Task, cache: GroundTruthCache | None = None, min_long_gain: int = 200) -> list[str]:
    """The per-category check of a final (augmented) task (module docstring); [] passes."""
    if task.category == "miss_param":
        return check_final_miss_param(task)
    if task.category == "miss_func":
        return check_final_miss_func(task)
    if task.category == "long_context":
        return check_final_long_context(task, cache, min_long_gain)
    return []
