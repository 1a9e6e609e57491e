"""Structural signatures of tasks: data flow of the executed ground truth, and a distance.

What lives here:
- `compute_signature(task)`: runs the ground truth turn by turn in a fresh `World` (the only
  side effect, on instances nobody else holds), traces where every argument value came from,
  and summarises the result as a `rods.tasks.Signature`.
- `trace_arguments`: the pure tracing step, on already executed calls (`ExecutedCall`).
- `dag_depth`, `topology_of`, `clarification_turns_of`: pure pieces of the summary.
- `signature_distance` / `distance_components` (defined in `rods.signature_distance`): how far
  apart two signatures are, in [0, 1]; the synthesis critique uses it to decide whether a variant "matches the structural complexity"
  of its seed (docs/ARCHITECTURE.md §5).
- `signature_histograms`: depth, topology, turns and calls counts for `rods data stats`.

The edge rule (where an argument value "came from"). Calls are numbered 0..n-1 over the whole
ground truth, turn after turn (the flattened index). Each argument of call j is cut into atoms:
- bools and None are never atoms; dict keys are not atoms, dict values and list items are walked;
- a number is an atom if it has at least 2 significant digits (`7`, `0.5` are not: small
  numbers recur by coincidence everywhere; `12`, `2.5`, `2857.14` are);
- a string with at least 2 alphanumeric characters is first tried whole. Only if the whole
  string is found nowhere (see the order below) is it cut into tokens (maximal runs of letters,
  digits and `_ . - @ # / :`, outer punctuation stripped), and a token is an atom only if it
  looks like an identifier: it contains a digit and 2+ alphanumerics (`USR002`, `3426812`,
  `2026-10-12`), or an inner `.`, `_` or `@` (`final_report.pdf`, `card_0064`, `a@b.com`).
  A token that reads as a number is matched as a number. Plain words are never tokens: they
  coincide too often.
Each atom is classified, first match wins:
1. `question`: it occurs in the user's text of turns 0..turn(j) (what the model has been told).
2. `result`: it occurs in the result of an earlier call i < j (any turn) whose own arguments do
   not contain it. The producer is the latest such i. A call that merely echoes one of its
   arguments back is not a source; the value entered the flow where that argument came from.
   This gives the data-flow edge (i, j).
3. `state`: it occurs in the world's public state before the first call (dict keys and values,
   object attributes: `initial_config` plus class defaults and long-context data) — counted in
   `state_edges`.
4. `literal`: none of the above (inferred by the model, a default, a computed value).
"Occurs" for strings: case-insensitive, not inside a longer alphanumeric run (`temp` does not
occur in `temporary`); results are searched both as the raw text and as the strings of the
parsed JSON (so `\\u` escapes do not hide a match). For numbers: equal to a number in the text
(digit groups `20,000` read as 20000), and for results also equal after rounding the result to
the atom's decimals when the atom has decimals (`2857.14` came from `2857.142857`).
Limits: values computed from results (sums, unit changes, reorderings) and words paraphrased by
the user are not traced; a large result (long-context listings) can match a number or name by
coincidence, so a long-context task can differ in edges from its base twin (BFCL: 14 of the
180 long-context tasks whose ground truth equals their base task's).

From the edges (distinct (i, j) pairs): the dependency DAG over calls; `depth` = nodes on its
longest path (no calls 0, calls without edges 1); `topology` = `independent` (no edges),
`chain` (every node in- and out-degree <= 1), `fan-out` (some out-degree >= 2, no in-degree
>= 2), `fan-in` (the reverse), `dag` (both); `cross_turn_edges` = edges between turns.
Category features: `holdout_turns` are the keys of `missed_function`; `empty_turns` are turns
with empty ground truth; `clarification_turns` (miss_param only) are turns with calls that follow
a turn with empty ground truth — the user asked, the model had to wait, the next message supplies
the missing value. In BFCL this finds exactly the turn added to the base task in 199 of 200
miss_param tasks; in `multi_turn_miss_param_180` it also counts a turn after one of the two
empty turns inherited from its base task.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rods.env.calls import CallSyntaxError, parse_python_call
from rods.env.world import World
from rods.signature_distance import (  # noqa: F401 - re-exported: the distance belongs to the signature
    DEFAULT_WEIGHTS,
    MATCH_TOLERANCE,
    STRUCTURE_WEIGHTS,
    DistanceWeights,
    distance_components,
    signature_distance,
)
from rods.signature_state import add_state_edges, execute_observed, state_dependency_candidates
from rods.tasks import Signature, Task, ToolCall

Source = Literal["question", "result", "state", "literal"]
TOPOLOGIES: tuple[str, ...] = ("independent", "chain", "fan-out", "fan-in", "dag")

_TOKEN_RE = re.compile(r"[A-Za-z0-9_.\-@#/:]+")
# A number not glued to a preceding letter or `_` (`USR002`, `card_0064` hold no number).
_NUMBER_RE = re.compile(r"(?<![A-Za-z0-9_])(?:-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?)")
_ALNUM_RE = re.compile(r"[A-Za-z0-9]")
_SPACE_RE = re.compile(r"\s+")
_DIGIT_GROUP_RE = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")  # the comma of `2,500`
_INNER_SEP_RE = re.compile(r"[A-Za-z0-9][._@][A-Za-z0-9]")


# ---------------------------------------------------------------- executing the ground truth


@dataclass(frozen=True)
class ExecutedCall:
    """One ground-truth call as executed: flattened index, turn, bound call, result text.

    `call` is None when the source string did not parse or bind; such a call keeps its index
    (so indices match the ground truth) but has no arguments to trace.
    """

    index: int
    turn: int
    call: ToolCall | None
    result: str


def execute_calls(task: Task, world: World) -> list[ExecutedCall]:
    """Run every ground-truth call of `task` on `world` (mutated), in order."""
    out: list[ExecutedCall] = []
    for turn, sources in enumerate(task.ground_truth):
        for source in sources:
            try:
                call = world.bind_python_call(parse_python_call(source))
            except (CallSyntaxError, KeyError, TypeError) as e:
                out.append(ExecutedCall(len(out), turn, None, f"Error during execution: {e}"))
                continue
            out.append(ExecutedCall(len(out), turn, call, world.execute(call).text))
    return out


# ---------------------------------------------------------------- atoms and haystacks


@dataclass(frozen=True)
class Haystack:
    """A text to search for atoms: lowercased strings and the numbers they hold."""

    text: str
    numbers: frozenset[float]

    @classmethod
    def of(cls, texts: Iterable[str], numbers: Iterable[float] = ()) -> Haystack:
        text = "\x00".join(normalize_text(t) for t in texts)
        return cls(text, frozenset(numbers) | frozenset(_numbers_in(text)))

    def has(self, atom: str | float, rounding: bool = False) -> bool:
        """Does `atom` occur here (module docstring)? `rounding` allows a rounded number."""
        if isinstance(atom, str):
            pattern = r"(?<![a-z0-9])" + re.escape(atom) + r"(?![a-z0-9])"
            return re.search(pattern, self.text) is not None
        if atom in self.numbers:
            return True
        decimals = _decimals(atom)
        if not rounding or decimals == 0:
            return False
        return any(math.isclose(round(x, decimals), atom, abs_tol=1e-9) for x in self.numbers)


def normalize_text(text: str) -> str:
    """Lowercase, whitespace runs collapsed to one space, trimmed: how atoms and texts compare."""
    return _SPACE_RE.sub(" ", text).strip().lower()


def _numbers_in(text: str) -> Iterator[float]:
    for m in _NUMBER_RE.finditer(text):
        yield float(m.group().replace(",", ""))


def _decimals(x: float) -> int:
    text = repr(float(x))
    if "e" in text or "." not in text:
        return 0
    frac = text.split(".")[1].rstrip("0")
    return len(frac)


def _significant_digits(x: float) -> int:
    digits = repr(abs(float(x))).removesuffix(".0").replace(".", "").lstrip("0")
    return len(digits) if "e" not in digits else 2


def _leaves(value: Any, strings: list[str], numbers: list[float], seen: set[int]) -> None:
    """Collect the strings and numbers of a JSON-like value or object graph.

    Dict keys are collected (file names, ids and door names are keys in BFCL states); objects are
    walked through their public attributes (values only); `seen` guards against cycles (a
    directory's `parent`).
    """
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int | float):
        if math.isfinite(value):
            numbers.append(float(value))
        return
    if isinstance(value, str):
        strings.append(value)
        return
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, dict):
        for k, v in value.items():
            _leaves(k, strings, numbers, seen)
            _leaves(v, strings, numbers, seen)
    elif isinstance(value, list | tuple | set | frozenset):
        for v in value:
            _leaves(v, strings, numbers, seen)
    elif hasattr(value, "__dict__") and not isinstance(value, type):
        for k, v in vars(value).items():
            if not k.startswith("_"):
                _leaves(v, strings, numbers, seen)


def value_haystack(texts: Iterable[str], parsed: Any) -> Haystack:
    """Texts plus the strings and numbers inside `parsed` (JSON value or object graph)."""
    strings: list[str] = list(texts)
    numbers: list[float] = []
    _leaves(parsed, strings, numbers, set())
    return Haystack.of(strings, numbers)


def result_haystack(result: str) -> Haystack:
    """A call's result text, and its JSON strings and numbers when it parses as JSON."""
    try:
        parsed = json.loads(result)
    except (json.JSONDecodeError, RecursionError):
        parsed = None
    return value_haystack([result], parsed)


def _is_identifier_token(token: str) -> bool:
    n_alnum = len(_ALNUM_RE.findall(token))
    has_digit = any(c.isdigit() for c in token)
    return (has_digit and n_alnum >= 2) or _INNER_SEP_RE.search(token) is not None


def string_tokens(value: str) -> list[str | float]:
    """Identifier-like tokens of a string (see the module docstring), numbers as floats."""
    out: list[str | float] = []
    for raw in _TOKEN_RE.findall(_DIGIT_GROUP_RE.sub("", value)):
        token = raw.strip("._-/:").lower()
        if not token or not _is_identifier_token(token):
            continue
        if not _NUMBER_RE.fullmatch(token):
            out.append(token)
        elif _significant_digits(number := float(token)) >= 2:
            out.append(number)
    return out


def argument_values(arguments: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(argument name, leaf value) pairs: dict values and list items walked, keys skipped."""

    def walk(name: str, value: Any) -> Iterator[tuple[str, Any]]:
        if isinstance(value, dict):
            for v in value.values():
                yield from walk(name, v)
        elif isinstance(value, list | tuple | set | frozenset):
            for v in value:
                yield from walk(name, v)
        else:
            yield name, value

    for name, value in arguments.items():
        yield from walk(name, value)


def _scalar_atom(value: Any) -> str | float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        if math.isfinite(value) and _significant_digits(value) >= 2:
            return float(value)
        return None
    if isinstance(value, str) and len(_ALNUM_RE.findall(value)) >= 2:
        return normalize_text(value)
    return None


# ---------------------------------------------------------------- tracing


@dataclass(frozen=True)
class Provenance:
    """Where one atom (a normalised string or a number) of an argument of call `call` came
    from; `producer` is the source call for `result`."""

    call: int
    argument: str
    value: str | float
    source: Source
    producer: int | None = None


def trace_arguments(
    task: Task, calls: Sequence[ExecutedCall], state: Haystack | None = None
) -> list[Provenance]:
    """Classify every atom of every call's arguments (the rule is in the module docstring).

    `state` is what the `state` source searches: `value_haystack([], world.public_state())`
    taken before the first call, or, when None, the task's `initial_config`.
    """
    questions = [Haystack.of(m.content for m in msgs) for msgs in task.question]
    state = state if state is not None else value_haystack([], task.initial_config)
    results = [result_haystack(c.result) for c in calls]
    own_args = [
        value_haystack([], list(c.call.arguments.values()) if c.call else []) for c in calls
    ]

    def classify(j: int, name: str, value: str | float) -> Provenance:
        if any(q.has(value) for q in questions[: calls[j].turn + 1]):
            return Provenance(j, name, value, "question")
        for i in range(j - 1, -1, -1):  # the latest producer that does not echo an argument
            if results[i].has(value, rounding=True) and not own_args[i].has(value):
                return Provenance(j, name, value, "result", i)
        return Provenance(j, name, value, "state" if state.has(value) else "literal")

    out: list[Provenance] = []
    for j, executed in enumerate(calls):
        for name, leaf in argument_values(executed.call.arguments if executed.call else {}):
            value = _scalar_atom(leaf)
            if value is None:
                continue
            whole = classify(j, name, value)
            tokens = (
                [t for t in string_tokens(value) if t != value] if isinstance(value, str) else []
            )
            if whole.source != "literal" or not tokens:
                out.append(whole)
            else:  # a string found nowhere whole: trace its identifier-like tokens instead
                out.extend(classify(j, name, t) for t in tokens)
    return out


# ---------------------------------------------------------------- the DAG summary


def dag_depth(n_calls: int, edges: Iterable[tuple[int, int]]) -> int:
    """Nodes on the longest path; edges must point forward (i < j). 0 calls -> 0."""
    longest = [1] * n_calls
    for i, j in sorted(edges, key=lambda e: e[1]):
        if not 0 <= i < j < n_calls:
            raise ValueError(f"edge {(i, j)} does not point forward within {n_calls} calls")
        longest[j] = max(longest[j], longest[i] + 1)
    return max(longest, default=0)


def topology_of(edges: Iterable[tuple[int, int]]) -> str:
    """`independent`, `chain`, `fan-out`, `fan-in` or `dag` from distinct edges."""
    distinct = set(edges)
    if not distinct:
        return "independent"
    out_degree = Counter(i for i, _ in distinct)
    in_degree = Counter(j for _, j in distinct)
    fans_out = max(out_degree.values()) >= 2
    fans_in = max(in_degree.values()) >= 2
    if fans_out and fans_in:
        return "dag"
    if fans_out:
        return "fan-out"
    if fans_in:
        return "fan-in"
    return "chain"


def clarification_turns_of(task: Task) -> tuple[int, ...]:
    """miss_param only: turns with calls right after a turn with empty ground truth."""
    if task.category != "miss_param":
        return ()
    gt = task.ground_truth
    return tuple(u for u in range(1, len(gt)) if gt[u] and not gt[u - 1])


def call_atoms(call: ToolCall) -> list[str | float]:
    """The atoms of a call's arguments: each whole scalar, and a string's identifier tokens."""
    out: list[str | float] = []
    for _, leaf in argument_values(call.arguments):
        value = _scalar_atom(leaf)
        if value is None:
            continue
        out.append(value)
        if isinstance(value, str):
            out += [t for t in string_tokens(value) if t != value]
    return out


def signature_from_trace(
    task: Task,
    calls: Sequence[ExecutedCall],
    trace: Sequence[Provenance],
    state_deps: Sequence[tuple[int, int]] = (),
) -> Signature:
    """Summarise a trace (and the state dependencies, `rods.signature_state`) into a `Signature`
    (pure). Depth, topology and cross-turn edges count both kinds of edge."""
    edges = sorted({(p.producer, p.call) for p in trace if p.producer is not None})
    dag = sorted({*edges, *state_deps})
    turn_of = [c.turn for c in calls]
    names = {c.call.name for c in calls if c.call is not None}
    return Signature(
        classes=tuple(sorted(task.involved_classes)),
        functions=tuple(sorted(names)),
        calls_per_turn=tuple(len(g) for g in task.ground_truth),
        n_calls=len(calls),
        edges=tuple(edges),
        state_deps=tuple(sorted(state_deps)),
        state_edges=sum(p.source == "state" for p in trace),
        depth=dag_depth(len(calls), dag),
        topology=topology_of(dag),
        cross_turn_edges=sum(turn_of[i] != turn_of[j] for i, j in dag),
        holdout_turns=tuple(sorted(int(k) for k in (task.missed_function or {}))),
        clarification_turns=clarification_turns_of(task),
        empty_turns=tuple(u for u, g in enumerate(task.ground_truth) if not g),
    )


def execute_and_sign(
    task: Task, world: World | None = None, state_dependencies: bool = True
) -> tuple[list[ExecutedCall], Signature]:
    """The executed ground-truth calls (results included) and the task's signature; without
    `state_dependencies` only data-flow edges form the DAG (the version-1 signature)."""
    world = world if world is not None else World.load(task)
    state = value_haystack([], world.public_state())  # walked before any call mutates it
    observed = execute_observed(task, world, normalize_text)
    turns = [u for u, sources in enumerate(task.ground_truth) for _ in sources]
    calls = [ExecutedCall(i, turns[i], o.call, o.result) for i, o in enumerate(observed)]
    trace = trace_arguments(task, calls, state)
    deps: list[tuple[int, int]] = []
    if state_dependencies:
        data = {(p.producer, p.call) for p in trace if p.producer is not None}
        deps = add_state_edges(len(calls), data, state_dependency_candidates(observed, call_atoms))
    return calls, signature_from_trace(task, calls, trace, deps)


def compute_signature(
    task: Task, world: World | None = None, state_dependencies: bool = True
) -> Signature:
    """Execute the ground truth in a fresh world (or `world`, freshly loaded for this task and
    mutated here) and return the task's signature. Never raises for a bad ground-truth call."""
    return execute_and_sign(task, world, state_dependencies)[1]


# ---------------------------------------------------------------- histograms


def _counts(values: Iterable[Any], order: Sequence[str] = ()) -> dict[str, int]:
    """Counts keyed by str(value): the labels of `order` first, then the rest sorted."""
    counter = Counter(values)
    rest = sorted(k for k in counter if k not in order)
    return {str(k): counter[k] for k in [*(k for k in order if k in counter), *rest]}


def signature_histograms(signatures: Iterable[Signature]) -> dict[str, dict[str, int]]:
    """Counts of depth, topology, turns (all user turns) and calls (total) over signatures."""
    sigs = list(signatures)
    return {
        "depth": _counts(s.depth for s in sigs),
        "topology": _counts((s.topology for s in sigs), TOPOLOGIES),
        "turns": _counts(len(s.calls_per_turn) for s in sigs),
        "calls": _counts(s.n_calls for s in sigs),
    }
