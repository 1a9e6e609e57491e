"""The procedural synthesis backend: no model, deterministic given the context's `rng`.

- `plan`: skill-aligned resampling over the classes' API graphs (`planner.py`).
- `arguments`: state-grounded samplers for every function of the 8 classes (`samplers.py`).
- `queries`: one user turn per planned turn (`writer.py`): goals, with setup steps left
  implicit, clauses from per-function phrase templates (`templates.py`, `phrasing.py`), varied
  frames and joins; values from earlier results are referred to by their source (`render.py`).
- `judge`: none (value None), so the graph's deterministic gates are the only critique;
  `repair` therefore never has a verdict to act on and answers `query_gen_failed`.

Stateless and thread-safe: everything per call lives in the context objects.
"""

from __future__ import annotations

from graphs.synthesis.backend import (
    ArgContext,
    Failure,
    PlanContext,
    Proposal,
    QueryContext,
    Verdict,
)
from graphs.synthesis.procedural.mined import scenario
from graphs.synthesis.procedural.planner import propose
from graphs.synthesis.procedural.samplers import sample_arguments
from graphs.synthesis.procedural.writer import write_queries
from rods.tasks import Task


class ProceduralBackend:
    """Backend without a model (see the module docstring)."""

    name = "procedural"

    def plan(self, ctx: PlanContext) -> Proposal:
        result = propose(ctx)
        if isinstance(result, Failure):
            return Proposal(failure=result)
        return Proposal(value=result)

    def arguments(self, ctx: ArgContext) -> Proposal:
        args = sample_arguments(ctx.function, ctx.world, ctx.earlier, ctx.rng)
        if isinstance(args, Failure):
            return Proposal(failure=args)
        return Proposal(value=args)

    def queries(self, ctx: QueryContext) -> Proposal:
        if not ctx.calls_per_turn:
            return Proposal(failure=Failure("no_prompts", "no executed turns"))
        try:
            root = ctx.seed.rods.root_id if ctx.seed.rods and ctx.seed.rods.root_id else ctx.seed.id
            queries = write_queries(
                ctx.calls_per_turn, ctx.results_per_turn, ctx.rng, avoid=scenario(root)
            )
        except KeyError as e:
            return Proposal(failure=Failure("query_gen_failed", f"no template for {e}"))
        if any(not q for q in queries):
            return Proposal(failure=Failure("query_gen_failed", "a turn without calls"))
        return Proposal(value=queries)

    def judge(self, task: Task) -> Proposal:
        return Proposal(value=None)

    def repair(self, task: Task, verdict: Verdict) -> Proposal:
        return Proposal(
            failure=Failure("query_gen_failed", "the procedural backend has no judge to repair for")
        )
