"""The synthesis graph's nodes: small functions returning partial state (routers: routers.py).

Every node takes the state and the LangGraph runtime (whose context is `SynthDeps`) and returns
only the keys it changes. Each sets `outcome`, which the routers read; routers never compute.
A node that raises is a bug, but still only data: `guarded` turns the exception into a counted
`pipeline_exception` and a failed attempt, and times every node into `latency_s`.

Loop bounds (all counters in the state, limits in `SynthConfig`):
- plan: re-asked while `plan_retries` ≤ max_plan_retries, then the attempt fails;
- execute: a patchable simulator error patches the initial config and re-runs execute while
  `patches` < max_patches; one call's arguments are re-asked ≤ max_arg_retries times;
- critique → repair → critique: while `repairs` < max_repairs;
- retry: ends an attempt; after max_attempts attempts the variant slot is given up.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from langgraph.runtime import Runtime

from graphs.synthesis import gates
from graphs.synthesis.augment import augment_body, name_long_entries
from graphs.synthesis.backend import (
    FAILURE_CODES,
    PATCHABLE_CODES,
    ArgContext,
    BackendUnavailable,
    Failure,
    Plan,
    PlanContext,
    Proposal,
    QueryContext,
    Usage,
    Verdict,
)
from graphs.synthesis.patches import error_message, patch_config
from graphs.synthesis.state import SynthDeps, SynthState
from rods.env.world import World
from rods.signature import DEFAULT_WEIGHTS, STRUCTURE_WEIGHTS, compute_signature
from rods.tasks import RodsMeta, Signature, Task, ToolCall, function_docs, synthetic_id

Node = Callable[[SynthState, Runtime[SynthDeps]], dict[str, Any]]


def guarded(stage: str) -> Callable[[Node], Node]:
    """Time the node; turn an escaped exception into a counted `pipeline_exception`."""

    def wrap(fn: Node) -> Node:
        @functools.wraps(fn)
        def node(state: SynthState, runtime: Runtime[SynthDeps]) -> dict[str, Any]:
            t0 = time.perf_counter()
            try:
                out = fn(state, runtime)
            except BackendUnavailable:
                raise  # not the variant's fault: the whole request is retried later
            except Exception as e:  # noqa: BLE001 - a node bug must not kill the worker
                runtime.context.notes.setdefault("exceptions", []).append(f"{stage}: {e!r}")
                out = {"outcome": "failed", "failures": {"pipeline_exception": 1}}
            out["latency_s"] = {stage: time.perf_counter() - t0}
            return out

        return node

    return wrap


def _code(failure: Failure | None, default: str) -> str:
    code = failure.code if failure is not None else default
    return code if code in FAILURE_CODES else default


def fresh_attempt() -> dict[str, Any]:
    """Per-attempt fields, reset at the start of every attempt."""
    return {
        "plan": None,
        "plan_retries": 0,
        "patches": 0,
        "repairs": 0,
        "calls_per_turn": None,
        "results_per_turn": None,
        "draft": None,
        "verdict": None,
    }


# ---------------------------------------------------------------- extract_skills


@guarded("extract_skills")
def extract_skills(state: SynthState, runtime: Runtime[SynthDeps]) -> dict[str, Any]:
    seed = state["seed"]
    signature = compute_signature(seed)
    if signature.n_calls == 0:
        return {"seed_signature": signature, "outcome": "failed", "failures": {"no_pattern": 1}}
    return {
        "seed_signature": signature,
        "initial_config": seed.initial_config,
        "outcome": "ok",
        **fresh_attempt(),
    }


# ---------------------------------------------------------------- plan


def _docs_by_name(classes: list[str]) -> dict[str, dict[str, Any]]:
    docs = function_docs()
    return {d["name"]: d for cls in classes for d in docs[cls]}


def plan_problem(plan: Any, seed: Task, deps: SynthDeps) -> str | None:
    """Why a proposed plan is unusable (a failure code), or None."""
    cfg = deps.config
    if not isinstance(plan, Plan) or not isinstance(plan.turns, tuple | list):
        return "decompose_failed"
    if not cfg.min_turns <= len(plan.turns) <= cfg.max_turns:
        return "decompose_failed"
    known = _docs_by_name(seed.involved_classes)
    for turn in plan.turns:
        if not isinstance(turn, tuple | list) or not 1 <= len(turn) <= cfg.max_calls_per_turn:
            return "decompose_failed"
        if any(not isinstance(f, str) or f not in known for f in turn):
            return "func_sample_failed"
    return None


@guarded("plan")
def plan(state: SynthState, runtime: Runtime[SynthDeps]) -> dict[str, Any]:
    deps = runtime.context
    seed = state["seed"]
    ctx = PlanContext(
        seed=seed,
        seed_signature=state["seed_signature"],
        classes=tuple(seed.involved_classes),
        attempt=state.get("attempts_total", 0),
        rng=deps.rng,
    )
    proposal = deps.backend.plan(ctx)
    problem = (
        _code(proposal.failure, "decompose_failed")
        if proposal.failure is not None
        else plan_problem(proposal.value, seed, deps)
    )
    if problem is None:
        turns = tuple(tuple(t) for t in proposal.value.turns)
        return {
            "plan": Plan(turns, proposal.value.notes),
            "initial_config": proposal.value.initial_config or seed.initial_config,
            "outcome": "ok",
            "usage": proposal.usage,
        }
    retries = state.get("plan_retries", 0) + 1
    return {
        "plan_retries": retries,
        "outcome": "retry" if retries <= deps.config.max_plan_retries else "failed",
        "failures": {problem: 1},
        "usage": proposal.usage,
    }


# ---------------------------------------------------------------- execute


def _world(config: dict[str, Any], classes: list[str]) -> World:
    shell = Task(
        id="multi_turn_base_draft",
        question=[],
        initial_config=config,
        involved_classes=classes,
        ground_truth=[],
    )
    return World.load(shell)


def _cut(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _replay(config: dict[str, Any], classes: list[str], calls: list[ToolCall]) -> World:
    world = _world(config, classes)
    for call in calls:
        world.execute(call)
    return world


@guarded("execute")
def execute(state: SynthState, runtime: Runtime[SynthDeps]) -> dict[str, Any]:
    """Ground truth first: arguments per planned call, executed in a fresh simulator."""
    deps = runtime.context
    seed = state["seed"]
    classes = list(seed.involved_classes)
    config = state["initial_config"]
    docs = _docs_by_name(classes)
    world = _world(config, classes)
    usage = Usage()
    failures: dict[str, int] = {}
    calls: list[ToolCall] = []
    earlier: list[tuple[ToolCall, str]] = []
    calls_per_turn: list[tuple[ToolCall, ...]] = []
    results_per_turn: list[tuple[str, ...]] = []

    def count(code: str) -> None:
        failures[code] = failures.get(code, 0) + 1

    def failed() -> dict[str, Any]:
        return {"outcome": "failed", "failures": failures, "usage": usage}

    for u, turn in enumerate(state["plan"].turns):
        turn_calls: list[ToolCall] = []
        turn_results: list[str] = []
        for function in turn:
            done = False
            feedback = ""
            for _ in range(deps.config.max_arg_retries + 1):
                ctx = ArgContext(
                    function, docs[function], world, list(earlier), u, deps.rng, feedback
                )
                proposal: Proposal = deps.backend.arguments(ctx)
                usage.add(proposal.usage)
                args = proposal.value
                if (
                    proposal.failure is not None
                    or not isinstance(args, dict)
                    or not all(isinstance(k, str) for k in args)
                ):
                    code = _code(proposal.failure, "param_gen_failed")
                    count(code)
                    feedback = proposal.failure.detail if proposal.failure else "not a JSON object"
                    if code not in PATCHABLE_CODES:  # e.g. the backend says the plan is wrong
                        return failed()
                    continue
                call = ToolCall(name=function, arguments=world.explicit_defaults(function, args))
                outcome = world.execute(call)
                if error_message(outcome.text) is None and (call, outcome.text) in earlier:
                    # The same call with the same result again: a pointless repeat (`cd('..')`
                    # twice moves twice and is fine; `ls()` twice with nothing between is not).
                    count("duplicate_func")
                    feedback = f"{call.to_python()} was already made"
                    world = _replay(config, classes, calls)
                    continue
                if error_message(outcome.text) is None:
                    calls.append(call)
                    earlier.append((call, outcome.text))
                    turn_calls.append(call)
                    turn_results.append(outcome.text)
                    done = True
                    break
                count("vm_exec_failed")
                patched = patch_config(config, world, call, outcome.text)
                if patched is not None and state.get("patches", 0) < deps.config.max_patches:
                    new_config, kind = patched
                    return {
                        "outcome": "patched",
                        "initial_config": new_config,
                        "patches": state.get("patches", 0) + 1,
                        "patch_counts": {kind: 1},
                        "failures": failures,
                        "usage": usage,
                    }
                feedback = f"{call.to_python()} failed: {_cut(outcome.text)}"
                world = _replay(config, classes, calls)  # undo whatever the failed call changed
            if not done:
                return failed()
        calls_per_turn.append(tuple(turn_calls))
        results_per_turn.append(tuple(turn_results))
    return {
        "outcome": "ok",
        "calls_per_turn": tuple(calls_per_turn),
        "results_per_turn": tuple(results_per_turn),
        "failures": failures,
        "usage": usage,
    }


# ---------------------------------------------------------------- rewrite


def build_draft(state: SynthState, queries: list[str]) -> Task:
    """The base-shaped task of this attempt (id: content hash in the `base` category)."""
    seed = state["seed"]
    calls_per_turn = state["calls_per_turn"] or ()
    world = _world(state["initial_config"], list(seed.involved_classes))
    path = list(
        dict.fromkeys(f"{world.owner(c.name)}.{c.name}" for turn in calls_per_turn for c in turn)
    )
    body = {
        "question": [[{"role": "user", "content": q}] for q in queries],
        "initial_config": state["initial_config"],
        "path": path,
        "involved_classes": list(seed.involved_classes),
        "ground_truth": [[c.to_python() for c in turn] for turn in calls_per_turn],
    }
    return Task.model_validate({"id": synthetic_id("base", body), **body})


def queries_problem(value: Any, n_turns: int) -> str | None:
    if not isinstance(value, list | tuple) or not value:
        return "no_prompts"
    if len(value) != n_turns or any(not isinstance(q, str) or not q.strip() for q in value):
        return "query_gen_failed"
    return None


def _draft_from_queries(state: SynthState, proposal: Proposal, extra: dict[str, Any]) -> dict[str, Any]:
    n_turns = len(state["calls_per_turn"] or ())
    problem = (
        _code(proposal.failure, "query_gen_failed")
        if proposal.failure is not None
        else queries_problem(proposal.value, n_turns)
    )
    if problem is not None:
        return {"outcome": "failed", "failures": {problem: 1}, "usage": proposal.usage, **extra}
    try:
        draft = build_draft(state, [q.strip() for q in proposal.value])
    except ValueError:
        return {
            "outcome": "failed",
            "failures": {"conversation_construct_failed": 1},
            "usage": proposal.usage,
            **extra,
        }
    return {"outcome": "ok", "draft": draft, "usage": proposal.usage, **extra}


@guarded("rewrite")
def rewrite(state: SynthState, runtime: Runtime[SynthDeps]) -> dict[str, Any]:
    """All user turns written together, from the executed calls and their results."""
    deps = runtime.context
    # Empty list/dict arguments say nothing a user would say (and include the defaults that
    # `World.explicit_defaults` wrote out); the query writer sees the calls without them.
    said = tuple(
        tuple(
            ToolCall(name=c.name, arguments={k: v for k, v in c.arguments.items() if v not in ([], {})})
            for c in turn
        )
        for turn in state["calls_per_turn"] or ()
    )
    ctx = QueryContext(
        seed=state["seed"],
        calls_per_turn=said,
        results_per_turn=state["results_per_turn"] or (),
        initial_config=state["initial_config"],
        rng=deps.rng,
    )
    return _draft_from_queries(state, deps.backend.queries(ctx), {})


# ---------------------------------------------------------------- critique (+ repair)


def _gate(
    task: Task, state: SynthState, deps: SynthDeps, weights: Any
) -> tuple[list[str], Signature]:
    cfg = deps.config
    signature = compute_signature(task)
    return gates.run_gates(
        task,
        deps.cache,
        seed_signature=state["seed_signature"],
        signature=signature,
        tolerance=cfg.signature_tolerance,
        weights=weights,
        pool=deps.pool_index,
        evals=deps.eval_index,
        max_chars=cfg.max_string_chars,
        max_items=cfg.max_list_items,
    ), signature


@guarded("critique")
def critique(state: SynthState, runtime: Runtime[SynthDeps]) -> dict[str, Any]:
    """Deterministic gates first, then the backend's judge (if it has one)."""
    deps = runtime.context
    draft = state["draft"]
    reasons, _ = _gate(draft, state, deps, STRUCTURE_WEIGHTS)
    if reasons:
        return {"outcome": "failed", "rejections": dict.fromkeys(reasons, 1)}
    proposal = deps.backend.judge(draft)
    if proposal.failure is not None or not isinstance(proposal.value, Verdict | type(None)):
        code = _code(proposal.failure, "query_verify_no_tag")
        return {
            "outcome": "failed",
            "failures": {code: 1},
            "rejections": {"judge_no_verdict": 1},
            "usage": proposal.usage,
        }
    verdict = proposal.value
    if verdict is None or verdict.ok:
        return {"outcome": "ok", "usage": proposal.usage}
    if state.get("repairs", 0) < deps.config.max_repairs:
        return {
            "outcome": "repair",
            "verdict": verdict,
            "failures": {"query_verify_failed": 1},
            "usage": proposal.usage,
        }
    return {
        "outcome": "failed",
        "failures": {"query_verify_failed": 1},
        "rejections": {"judge_rejected": 1},
        "usage": proposal.usage,
    }


@guarded("repair")
def repair(state: SynthState, runtime: Runtime[SynthDeps]) -> dict[str, Any]:
    deps = runtime.context
    proposal = deps.backend.repair(state["draft"], state["verdict"] or Verdict(False))
    return _draft_from_queries(state, proposal, {"repairs": state.get("repairs", 0) + 1})


# ---------------------------------------------------------------- augment


@guarded("augment")
def augment(state: SynthState, runtime: Runtime[SynthDeps]) -> dict[str, Any]:
    """Into the seed's category; the gates and the category's check (`gates.check_final`) run
    again on the final task before it is accepted."""
    deps = runtime.context
    seed = state["seed"]
    category = seed.category
    body = augment_body(state["draft"], category, deps.rng, seed)
    if isinstance(body, str):
        return {"outcome": "failed", "rejections": {body: 1}}
    body.pop("id", None)
    body.pop("rods", None)
    task = Task.model_validate({"id": synthetic_id(category, body), **body})
    if category == "long_context":  # a flowed entry of a long result is named by position
        named = name_long_entries(task)
        if named is not task:
            body = named.model_dump(mode="json", exclude={"id", "rods"})
            task = Task.model_validate({"id": synthetic_id(category, body), **body})
    reasons, signature = _gate(task, state, deps, DEFAULT_WEIGHTS)
    reasons = sorted({*reasons, *gates.check_final(task, deps.cache)})  # the category's check
    if reasons:
        return {"outcome": "failed", "rejections": dict.fromkeys(reasons, 1)}
    lineage = seed.rods or RodsMeta(origin="seed")
    extra = {"request_id": deps.request_id} if deps.request_id is not None else {}
    meta = RodsMeta(
        origin="synthetic",
        parent_id=seed.id,
        root_id=lineage.root_id or seed.id,
        generation=lineage.generation + 1,
        synthesizer=deps.backend.name,
        signature=signature,
        attempt=state.get("attempt", 0) + 1,  # attempts this variant took (1 = first try)
        patches=state.get("patches", 0),  # initial-config patches applied
        failures=dict(sorted(state.get("failures", {}).items())),  # this run's counts so far
        rejections=dict(sorted(state.get("rejections", {}).items())),
        **extra,
    )
    task = task.model_copy(update={"rods": meta})
    if deps.pool_index is not None:
        deps.pool_index.add(task)  # later variants of this run must not duplicate it
    return {
        "outcome": "accepted",
        "accepted": [task],
        "slot": state.get("slot", 0) + 1,
        "attempt": 0,
        "attempts_total": state.get("attempts_total", 0) + 1,
        **fresh_attempt(),
    }


# ---------------------------------------------------------------- retry


def retry(state: SynthState, runtime: Runtime[SynthDeps]) -> dict[str, Any]:
    """End a failed attempt: next attempt of this variant, or give the variant up."""
    attempt = state.get("attempt", 0) + 1
    slot = state.get("slot", 0)
    if attempt >= runtime.context.config.max_attempts:
        slot, attempt = slot + 1, 0
    return {
        "attempt": attempt,
        "slot": slot,
        "attempts_total": state.get("attempts_total", 0) + 1,
        "outcome": "failed",
        **fresh_attempt(),
    }
