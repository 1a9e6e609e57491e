"""A scripted synthesis backend for unit tests of the graph (no model, no procedural knowledge).

`ScriptedBackend` answers each Backend method from a script: a list of proposals consumed in
order (the last one repeats), or a function of the context. By default it imitates the seed:
the seed's functions per turn (empty turns dropped), the seed's arguments call by call with
string values decorated by `suffix`, and plain queries that state every argument value.
It records every call so tests can count them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from graphs.synthesis.backend import (
    ArgContext,
    Failure,
    Plan,
    PlanContext,
    Proposal,
    QueryContext,
    Usage,
    Verdict,
)
from rods.env.calls import parse_python_call
from rods.env.world import World
from rods.tasks import Task

Script = list[Proposal] | Callable[[Any], Proposal] | None


def seed_calls(seed: Task) -> list[list[tuple[str, dict[str, Any]]]]:
    """The seed's ground-truth calls per non-empty turn, bound to keyword arguments."""
    world = World.load(seed)
    out = []
    for sources in seed.ground_truth:
        if sources:
            calls = [world.bind_python_call(parse_python_call(s)) for s in sources]
            out.append([(c.name, dict(c.arguments)) for c in calls])
    return out


def describe(name: str, args: dict[str, Any]) -> str:
    values = ", ".join(repr(v) for v in args.values())
    verb = name.split("_")[0]
    return f"please {verb} using {values}" if values else f"please {verb} now"


class ScriptedBackend:
    name = "scripted"

    def __init__(
        self,
        seed: Task,
        *,
        plans: Script = None,
        arguments: Script = None,
        queries: Script = None,
        judge: Script = None,
        repair: Script = None,
        edit: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None,
        usage: Usage | None = None,
        greeting: str = "Hello!",
    ):
        self.seed = seed
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()
        self._scripts = {
            "plan": plans,
            "arguments": arguments,
            "queries": queries,
            "judge": judge,
            "repair": repair,
        }
        self._edit = edit or (lambda name, args: args)
        self._usage = usage or Usage()
        self._greeting = greeting
        self._seed_calls = seed_calls(seed)

    def _next(self, method: str, ctx: Any, default: Callable[[Any], Proposal]) -> Proposal:
        with self._lock:
            n = self.calls.get(method, 0)
            self.calls[method] = n + 1
        script = self._scripts[method]
        if script is None:
            proposal = default(ctx)
        elif callable(script):
            proposal = script(ctx)
        else:
            proposal = script[min(n, len(script) - 1)]
        usage = Usage()
        usage.add(self._usage)
        return Proposal(proposal.value, proposal.failure, usage)

    # --- defaults: imitate the seed
    def _plan(self, ctx: PlanContext) -> Proposal:
        return Proposal(Plan(tuple(tuple(n for n, _ in turn) for turn in self._seed_calls)))

    def _arguments(self, ctx: ArgContext) -> Proposal:
        index = len(ctx.earlier)
        flat = [c for turn in self._seed_calls for c in turn]
        if index >= len(flat) or flat[index][0] != ctx.function:
            return Proposal(failure=Failure("param_gen_failed", "not the seed's call"))
        name, args = flat[index]
        return Proposal(self._edit(name, dict(args)))

    def _queries(self, ctx: QueryContext) -> Proposal:
        return Proposal(
            [
                f"{self._greeting} " + "; then ".join(describe(c.name, c.arguments) for c in turn) + "."
                for turn in ctx.calls_per_turn
            ]
        )

    def plan(self, ctx: PlanContext) -> Proposal:
        return self._next("plan", ctx, self._plan)

    def arguments(self, ctx: ArgContext) -> Proposal:
        return self._next("arguments", ctx, self._arguments)

    def queries(self, ctx: QueryContext) -> Proposal:
        return self._next("queries", ctx, self._queries)

    def judge(self, task: Task) -> Proposal:
        return self._next("judge", task, lambda _: Proposal(None))

    def repair(self, task: Task, verdict: Verdict) -> Proposal:
        return self._next(
            "repair",
            (task, verdict),
            lambda _: Proposal([m[0].content + " Thanks a lot." for m in task.question]),
        )
