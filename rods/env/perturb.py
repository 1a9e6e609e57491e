"""Perturbed trajectories made from a task's ground truth: near-misses to check the reward on.

What lives here and why: the progress reward (`rods.env.reward`) must call a trajectory correct
exactly when bfcl-eval's `multi_turn_checker` does (`rods.env.official`). Ground truth alone only
exercises the "yes" side, so this module makes near-misses from it — the mistakes a policy makes.
tests/unit/test_official_agreement.py compares the two verdicts on them; benchmarks/bench_env.py
times both scorers on the same set.

Contracts:
- `perturb(task, gt_calls_T, rng)` is a pure function of the task, its ground-truth calls per turn
  (keyword `ToolCall`s, as `GroundTruthCache` binds them) and the state of `rng`: the same inputs
  give the same `Perturbation`. `perturbations(task, gt_calls_T, seed, n)` seeds its own rng from
  (seed, task id), so a sample does not depend on which other tasks were drawn.
- The number of turns never changes (bfcl-eval force-fails a turn-count mismatch before checking).
- Call names are documented functions of the task's involved classes or `UNKNOWN_FUNCTION`;
  argument names are identifiers; values are literals built from ground-truth values. (The
  official checker `eval`s call strings; `rods.env.official` re-renders them safely anyway.)

Kinds (`KINDS`): drop_call, duplicate_call, reorder_calls, change_argument, move_call_prev,
move_call_next, extra_read_call, empty_turn, call_in_empty_turn, unknown_function,
wrong_argument_name; `combo` applies two or three of them and is labelled `a+b(+c)`. Some
perturbations are harmless (a duplicated read, a reorder of independent calls, an extra
read-only call): the set holds trajectories on both sides of the verdict.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rods.tasks import Task, ToolCall, function_docs, task_function_docs

UNKNOWN_FUNCTION = "nonexistent_function_xyz"  # no simulator method and no name in eval's scope
UNKNOWN_ARGUMENT = "nonexistent_argument_xyz"

# Functions that only read state (by name), plus every MathAPI function (all are pure).
_READ_PREFIXES = (
    "get_", "list", "ls", "pwd", "display", "check", "view", "search", "find", "cat", "grep",
    "wc", "du", "tail", "diff", "estimate", "retrieve", "filter_", "compute_", "gallon_to",
    "liter_to",
)  # fmt: skip
_READ_CONTAINS = ("get_login_status", "get_stats")

Calls = list[list[ToolCall]]  # calls per user turn


@dataclass(frozen=True)
class Perturbation:
    """One perturbed trajectory: what was done to the ground truth, and the calls per turn."""

    kind: str
    calls_per_turn: tuple[tuple[ToolCall, ...], ...]

    def as_lists(self) -> Calls:
        return [list(turn) for turn in self.calls_per_turn]


@dataclass(frozen=True)
class _Context:
    """What the operators may draw from: the task's functions and ground-truth values."""

    params: dict[str, tuple[tuple[str, ...], tuple[str, ...]]]  # name -> (all params, required)
    read_only: tuple[str, ...]
    values: dict[str, tuple[Any, ...]]  # argument name -> distinct ground-truth values
    empty_turns: tuple[int, ...]  # turns whose ground truth is empty


def _is_read_only(name: str, class_name: str) -> bool:
    low = name.lower()
    return (
        class_name == "MathAPI"
        or low.startswith(_READ_PREFIXES)
        or any(part in low for part in _READ_CONTAINS)
    )


def _context(task: Task, gt: Sequence[Sequence[ToolCall]]) -> _Context:
    if len(gt) != task.n_turns:
        raise ValueError(
            f"task {task.id}: {len(gt)} ground-truth turns, the task has {task.n_turns}"
        )
    params: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    read_only: list[str] = []
    docs = task_function_docs(task)
    class_docs = function_docs()
    owner = {doc["name"]: cls for cls in task.involved_classes for doc in class_docs[cls]}
    for doc in docs:
        spec = doc.get("parameters", {})
        params[doc["name"]] = (tuple(spec.get("properties", {})), tuple(spec.get("required", [])))
        if _is_read_only(doc["name"], owner.get(doc["name"], "")):
            read_only.append(doc["name"])
    values: dict[str, list[Any]] = {}
    for turn in gt:
        for call in turn:
            for k, v in call.arguments.items():
                seen = values.setdefault(k, [])
                if v not in seen:
                    seen.append(v)
    return _Context(
        params=params,
        read_only=tuple(read_only),
        values={k: tuple(v) for k, v in values.items()},
        empty_turns=tuple(u for u, turn in enumerate(task.ground_truth) if not turn),
    )


def _positions(calls: Calls, min_len: int = 1) -> list[int]:
    return [u for u, turn in enumerate(calls) if len(turn) >= min_len]


# ---------------------------------------------------------------- value edits

_SKIP = object()  # no different value of the same kind can be made


def _edit_value(value: Any, pool: Sequence[Any], rng: random.Random) -> Any:
    """A different literal of the same kind, or `_SKIP` when none can be made."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + rng.choice([-1, 1, 2, 10])
    if isinstance(value, float):
        new = round(value + rng.choice([-1.0, -0.5, 0.5, 1.0, 10.0]), 6)
        return new if math.isfinite(new) and new != value else _SKIP
    if isinstance(value, str):
        others = [p for p in pool if isinstance(p, str) and p != value]
        options = [value + "x", value[:-1], value.upper(), value.lower(), *others[:3]]
        options = [o for o in options if o != value]
        return rng.choice(options) if options else _SKIP
    if isinstance(value, list | tuple) and value:
        i = rng.randrange(len(value))
        return type(value)(v for j, v in enumerate(value) if j != i)
    if isinstance(value, dict) and value:
        drop = rng.choice(list(value))
        return {k: v for k, v in value.items() if k != drop}
    return _SKIP


def _read_call(ctx: _Context, rng: random.Random) -> ToolCall | None:
    """A read-only call whose required arguments all have a ground-truth value of that name."""
    fillable = [name for name in ctx.read_only if all(p in ctx.values for p in ctx.params[name][1])]
    if not fillable:
        return None
    name = rng.choice(fillable)
    all_params, required = ctx.params[name]
    args = {p: rng.choice(ctx.values[p]) for p in required}
    for p in all_params:
        if p not in args and p in ctx.values and rng.random() < 0.3:
            args[p] = rng.choice(ctx.values[p])
    return ToolCall(name=name, arguments=args)


# ---------------------------------------------------------------- operators
# Each takes calls per turn (a fresh copy it may mutate) and returns them, or None when it does
# not apply to this trajectory.

Op = Callable[[Calls, _Context, random.Random], Calls | None]


def _drop_call(calls: Calls, ctx: _Context, rng: random.Random) -> Calls | None:
    turns = _positions(calls)
    if not turns:
        return None
    u = rng.choice(turns)
    del calls[u][rng.randrange(len(calls[u]))]
    return calls


def _duplicate_call(calls: Calls, ctx: _Context, rng: random.Random) -> Calls | None:
    turns = _positions(calls)
    if not turns:
        return None
    u = rng.choice(turns)
    i = rng.randrange(len(calls[u]))
    calls[u].insert(i + 1, calls[u][i])
    return calls


def _reorder_calls(calls: Calls, ctx: _Context, rng: random.Random) -> Calls | None:
    turns = [u for u in _positions(calls, 2) if len(set(map(_key, calls[u]))) > 1]
    if not turns:
        return None
    u = rng.choice(turns)
    before = list(calls[u])
    while calls[u] == before:
        rng.shuffle(calls[u])
    return calls


def _change_argument(calls: Calls, ctx: _Context, rng: random.Random) -> Calls | None:
    sites = [(u, i) for u in _positions(calls) for i, c in enumerate(calls[u]) if c.arguments]
    rng.shuffle(sites)
    for u, i in sites:
        call = calls[u][i]
        keys = list(call.arguments)
        rng.shuffle(keys)
        for k in keys:
            new = _edit_value(call.arguments[k], ctx.values.get(k, ()), rng)
            if new is not _SKIP:
                calls[u][i] = ToolCall(name=call.name, arguments={**call.arguments, k: new})
                return calls
    return None


def _move_call(step: int) -> Op:
    def op(calls: Calls, ctx: _Context, rng: random.Random) -> Calls | None:
        turns = [u for u in _positions(calls) if 0 <= u + step < len(calls)]
        if not turns:
            return None
        u = rng.choice(turns)
        call = calls[u].pop(rng.randrange(len(calls[u])))
        if step < 0:
            calls[u + step].append(call)  # done too early: at the end of the previous turn
        else:
            calls[u + step].insert(0, call)  # done too late: first thing in the next turn
        return calls

    return op


def _extra_read_call(calls: Calls, ctx: _Context, rng: random.Random) -> Calls | None:
    turns = [u for u in range(len(calls)) if u not in ctx.empty_turns]
    call = _read_call(ctx, rng)
    if not turns or call is None:
        return None
    u = rng.choice(turns)
    calls[u].insert(rng.randrange(len(calls[u]) + 1), call)
    return calls


def _empty_turn(calls: Calls, ctx: _Context, rng: random.Random) -> Calls | None:
    turns = _positions(calls)
    if not turns:
        return None
    calls[rng.choice(turns)] = []
    return calls


def _call_in_empty_turn(calls: Calls, ctx: _Context, rng: random.Random) -> Calls | None:
    if not ctx.empty_turns:
        return None
    u = rng.choice(ctx.empty_turns)
    later = [c for turn in calls[u + 1 :] for c in turn]
    # Either act on the request before the missing piece arrives, or just look around.
    call = rng.choice(later) if later and rng.random() < 0.6 else _read_call(ctx, rng)
    if call is None:
        return None
    calls[u].append(call)
    return calls


def _unknown_function(calls: Calls, ctx: _Context, rng: random.Random) -> Calls | None:
    turns = _positions(calls)
    if not turns:
        return None
    u = rng.choice(turns)
    i = rng.randrange(len(calls[u]))
    if rng.random() < 0.5:  # a misspelt call instead of the real one
        calls[u][i] = ToolCall(name=UNKNOWN_FUNCTION, arguments=calls[u][i].arguments)
    else:  # a hallucinated extra call
        calls[u].insert(i, ToolCall(name=UNKNOWN_FUNCTION, arguments={}))
    return calls


def _wrong_argument_name(calls: Calls, ctx: _Context, rng: random.Random) -> Calls | None:
    sites = [(u, i) for u in _positions(calls) for i in range(len(calls[u]))]
    if not sites:
        return None
    u, i = rng.choice(sites)
    call = calls[u][i]
    if not call.arguments:
        calls[u][i] = ToolCall(name=call.name, arguments={UNKNOWN_ARGUMENT: 1})
        return calls
    old = rng.choice(list(call.arguments))
    real = [p for p in ctx.params.get(call.name, ((), ()))[0] if p not in call.arguments]
    new = rng.choice(real) if real and rng.random() < 0.5 else UNKNOWN_ARGUMENT
    args = {(new if k == old else k): v for k, v in call.arguments.items()}
    calls[u][i] = ToolCall(name=call.name, arguments=args)
    return calls


KINDS: dict[str, Op] = {
    "drop_call": _drop_call,
    "duplicate_call": _duplicate_call,
    "reorder_calls": _reorder_calls,
    "change_argument": _change_argument,
    "move_call_prev": _move_call(-1),
    "move_call_next": _move_call(+1),
    "extra_read_call": _extra_read_call,
    "empty_turn": _empty_turn,
    "call_in_empty_turn": _call_in_empty_turn,
    "unknown_function": _unknown_function,
    "wrong_argument_name": _wrong_argument_name,
}
COMBO = "combo"


def _key(call: ToolCall) -> str:
    return call.to_python()


def _copy(calls: Sequence[Sequence[ToolCall]]) -> Calls:
    return [list(turn) for turn in calls]


def perturb(
    task: Task,
    gt_calls_T: Sequence[Sequence[ToolCall]],
    rng: random.Random,
    kind: str | None = None,
) -> Perturbation | None:
    """One perturbation of `kind` (or of a kind drawn from the applicable ones, `combo` included).

    Returns None only when `kind` is given and does not apply to this task (e.g. reorder_calls on
    a task with no turn of two different calls).
    """
    if kind is not None and kind != COMBO and kind not in KINDS:
        raise ValueError(f"unknown perturbation kind {kind!r}; known: {[*KINDS, COMBO]}")
    return _perturb(gt_calls_T, _context(task, gt_calls_T), rng, kind)


def perturbations(
    task: Task, gt_calls_T: Sequence[Sequence[ToolCall]], seed: int, n: int
) -> list[Perturbation]:
    """`n` perturbations of one task (kinds drawn), from an rng seeded by (seed, task id)."""
    rng = random.Random(f"{seed}:{task.id}")
    ctx = _context(task, gt_calls_T)
    return [p for p in (_perturb(gt_calls_T, ctx, rng, None) for _ in range(n)) if p is not None]


def _perturb(
    gt_calls_T: Sequence[Sequence[ToolCall]], ctx: _Context, rng: random.Random, kind: str | None
) -> Perturbation | None:
    if kind is None:
        kind = rng.choice([*KINDS, COMBO])
        if kind != COMBO:  # fall back to another kind when the drawn one does not apply
            for k in [kind, *rng.sample(list(KINDS), len(KINDS))]:
                out = KINDS[k](_copy(gt_calls_T), ctx, rng)
                if out is not None:
                    return _done(k, out)
            return None  # pragma: no cover - empty_turn applies to every task with a call
    if kind == COMBO:
        calls, wanted = _copy(gt_calls_T), rng.choice([2, 2, 3])
        applied: list[str] = []
        for k in rng.sample(list(KINDS), len(KINDS)):
            out = KINDS[k](_copy(calls), ctx, rng)
            if out is not None:
                calls, applied = out, [*applied, k]
            if len(applied) == wanted:
                break
        return _done("+".join(applied), calls) if applied else None
    out = KINDS[kind](_copy(gt_calls_T), ctx, rng)
    return None if out is None else _done(kind, out)


def _done(kind: str, calls: Calls) -> Perturbation:
    return Perturbation(kind, tuple(tuple(turn) for turn in calls))
