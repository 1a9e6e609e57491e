"""The procedural synthesis backend: no model, deterministic given the context's `rng`.

- `plan`: skill-aligned resampling over the classes' API graphs (`planner.py`).
- `arguments`: state-grounded samplers for every function of the 8 classes (`samplers.py`).
- `queries`: one user turn per planned turn, each clause from a per-function phrase template
  (`templates.py`), joined with varied connectives; values from earlier results are referred to
  by their source (`render.py`).
- `judge`: none (value None), so the graph's deterministic gates are the only critique;
  `repair` therefore never has a verdict to act on and answers `query_gen_failed`.

Stateless and thread-safe: everything per call lives in the context objects.
"""

from __future__ import annotations

import random
import re

from graphs.synthesis.backend import (
    ArgContext,
    Failure,
    PlanContext,
    Proposal,
    QueryContext,
    Verdict,
)
from graphs.synthesis.procedural.flow import Flow
from graphs.synthesis.procedural.planner import propose
from graphs.synthesis.procedural.render import Args
from graphs.synthesis.procedural.samplers import sample_arguments
from graphs.synthesis.procedural.templates import TEMPLATES
from rods.tasks import Task, ToolCall

_ASIDE_RE = re.compile(r" \(my access token is '[^']*'\)")
_FIRST_OPENERS = ("", "Hi! ", "Hello there. ", "I need a hand with something. ")
_LATER_OPENERS = ("Next, ", "After that, ", "Now ", "Also, ", "One more thing: ", "Thanks. Now ")
_ONE = ("Could you {0}?", "Please {0}.", "I'd like you to {0}.", "Would you {0}?")
_TWO = (
    "Could you {0}, and then {1}?",
    "Please {0} and {1}.",
    "I'd like you to {0}; after that, {1}.",
)
_THREE = (
    "Please {0}, then {1}, and finally {2}.",
    "Could you {0}, {1}, and then {2}?",
    "I'd like you to {0}; next, {1}; and last, {2}.",
)


def clause(call: ToolCall, flow: Flow, rng: random.Random) -> str:
    """One call as an imperative clause (raises KeyError for a function without a template)."""
    variants = TEMPLATES[call.name]
    return variants[rng.randrange(len(variants))](Args(call, flow, rng))


def turn_query(clauses: list[str], first: bool, rng: random.Random) -> str:
    forms = (_ONE, _TWO, _THREE)[min(len(clauses), 3) - 1]
    if len(clauses) > 3:  # never planned (≤ 3 calls a turn), kept total for safety
        clauses = [", ".join(clauses[:-2]), clauses[-2], clauses[-1]]
    body = rng.choice(forms).format(*clauses)
    opener = rng.choice(_FIRST_OPENERS if first else _LATER_OPENERS)
    if opener.endswith((", ", ": ", "Now ")) and not body.startswith("I'"):
        body = body[0].lower() + body[1:]
    return opener + body


def write_queries(
    calls_per_turn: tuple[tuple[ToolCall, ...], ...],
    results_per_turn: tuple[tuple[str, ...], ...],
    rng: random.Random,
) -> list[str]:
    earlier: list[tuple[ToolCall, str]] = []
    out = []
    for u, (calls, results) in enumerate(zip(calls_per_turn, results_per_turn, strict=True)):
        clauses = []
        said: set[str] = set()
        for call, result in zip(calls, results, strict=True):
            text = clause(call, Flow(earlier), rng)
            for aside in _ASIDE_RE.findall(text):  # say a credential once per turn
                if aside in said:
                    text = text.replace(aside, "")
                said.add(aside)
            clauses.append(text)
            earlier.append((call, result))
        out.append(turn_query(clauses, u == 0, rng) if clauses else "")
    return out


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
            queries = write_queries(ctx.calls_per_turn, ctx.results_per_turn, ctx.rng)
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
