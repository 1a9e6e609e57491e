"""The synthesis graph and `synthesize`, the one call a worker (or the CLI) makes per request.

    extract_skills → plan ⟲ → execute ⟲(patch) → rewrite → critique ⇄ repair → augment
                      ↑                                                          │
                      └───────────── retry (attempt + 1, or next variant) ◄──────┘ (any failure)

One graph run fills `n_variants` slots; each slot gets at most `max_attempts` full attempts.
The compiled graph holds no run state (it is built once per process); everything of a run lives
in its state and its `SynthDeps` context, so concurrent runs in threads share nothing mutable
except what locks itself (the dedup indexes) — the backend must be thread-safe (its contract).
"""

from __future__ import annotations

import random
import time
from functools import cache
from typing import Any

from langgraph.graph import END, START, StateGraph

from graphs.synthesis import gates, nodes, routers
from graphs.synthesis.backend import Backend, Usage
from graphs.synthesis.state import SynthConfig, SynthDeps, SynthesisResult, SynthState
from rods.env.reward import GroundTruthCache
from rods.tasks import Task, is_eval_task


class EvalSeedError(ValueError):
    """A held-out evaluation task (or a descendant of one) was given as a synthesis seed."""


@cache
def build_graph() -> Any:
    """The compiled graph (stateless; cached per process)."""
    g = StateGraph(SynthState, context_schema=SynthDeps)
    g.add_node("extract_skills", nodes.extract_skills)
    g.add_node("plan", nodes.plan)
    g.add_node("execute", nodes.execute)
    g.add_node("rewrite", nodes.rewrite)
    g.add_node("critique", nodes.critique)
    g.add_node("repair", nodes.repair)
    g.add_node("augment", nodes.augment)
    g.add_node("retry", nodes.retry)
    g.add_edge(START, "extract_skills")
    g.add_conditional_edges("extract_skills", routers.after_extract, ["plan", END])
    g.add_conditional_edges("plan", routers.after_plan, ["plan", "execute", "retry"])
    g.add_conditional_edges("execute", routers.after_execute, ["execute", "rewrite", "retry"])
    g.add_conditional_edges("rewrite", routers.after_rewrite, ["critique", "retry"])
    g.add_conditional_edges("critique", routers.after_critique, ["augment", "repair", "retry"])
    g.add_conditional_edges("repair", routers.after_repair, ["critique", "retry"])
    g.add_conditional_edges("augment", routers.after_augment, ["plan", "retry", END])
    g.add_conditional_edges("retry", routers.after_retry, ["plan", END])
    return g.compile()


def _step_limit(n_variants: int, cfg: SynthConfig) -> int:
    """LangGraph's recursion limit: the most node visits the bounded loops allow, plus slack."""
    per_attempt = (1 + cfg.max_plan_retries) + (1 + cfg.max_patches) + 2 * (1 + cfg.max_repairs) + 3
    return 10 + n_variants * cfg.max_attempts * per_attempt


def check_seed(seed: Task) -> None:
    """Synthesis never starts from held-out evaluation data (docs/ARCHITECTURE.md §3)."""
    root = seed.rods.root_id if seed.rods and seed.rods.root_id else seed.id
    for task_id in {seed.id, root}:
        if is_eval_task(task_id):
            raise EvalSeedError(
                f"{task_id} is a held-out evaluation task; synthesis only starts from training "
                "seeds (`rods data ids --split train`) and their descendants"
            )


def synthesize(
    seed: Task,
    *,
    n_variants: int,
    backend: Backend,
    config: SynthConfig | None = None,
    pool_index: gates.DedupIndex | None = None,
    request_id: str | None = None,
    rng_seed: int = 0,
    contamination_guard: bool = True,
) -> SynthesisResult:
    """Run the graph once for `seed`; return up to `n_variants` validated variants and counts.

    Thread-safe. Raises `EvalSeedError` for a held-out seed and `ValueError` for n_variants < 1;
    every other problem is a counted failure or rejection in the result. `pool_index` is not
    modified (a private copy also holds the seed and this run's accepted variants).
    """
    check_seed(seed)
    if n_variants < 1:
        raise ValueError(f"n_variants must be at least 1, not {n_variants}")
    cfg = config or SynthConfig()
    pool = pool_index.copy() if pool_index is not None else gates.DedupIndex(threshold=cfg.near_duplicate)
    pool.add(seed)
    deps = SynthDeps(
        backend=backend,
        config=cfg,
        rng=random.Random(rng_seed),
        cache=GroundTruthCache(max_tasks=64),
        eval_index=gates.eval_index(cfg.near_duplicate) if contamination_guard else None,
        pool_index=pool,
        request_id=request_id,
    )
    state: SynthState = {
        "seed": seed,
        "n_variants": n_variants,
        "slot": 0,
        "attempt": 0,
        "attempts_total": 0,
        "accepted": [],
        "failures": {},
        "rejections": {},
        "patch_counts": {},
        "latency_s": {},
        "usage": Usage(),
    }
    t0 = time.perf_counter()
    final = build_graph().invoke(
        state, {"recursion_limit": _step_limit(n_variants, cfg)}, context=deps
    )
    usage: Usage = final.get("usage") or Usage()
    latency = dict(final.get("latency_s", {}))
    latency["total"] = time.perf_counter() - t0
    return SynthesisResult(
        request_id=request_id,
        seed_id=seed.id,
        tasks=list(final.get("accepted", [])),
        failures=dict(final.get("failures", {})),
        rejections=dict(final.get("rejections", {})),
        patches=dict(final.get("patch_counts", {})),
        attempts=int(final.get("attempts_total", 0)),
        requested=n_variants,
        latency_s=latency,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cost_usd=usage.cost_usd,
        model_calls=usage.calls,
        exceptions=list(deps.notes.get("exceptions", []))[:5],
    )
