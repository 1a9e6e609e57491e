"""The contract between the synthesis graph and its backends (procedural, llm).

The graph owns control flow, retries, execution and gates; a backend only *proposes*: a plan of
functions per turn, the arguments of one call, the user queries of a conversation, and (optionally)
a judgement. Every proposal is checked by the graph against the real simulator, so a backend can
be wrong without harm. A backend never raises for a bad proposal: it returns a `Failure` with a
code from `FAILURE_CODES` (the paper's taxonomy), which the graph counts.

Backends must be thread-safe (a worker may run several graphs at once in threads): keep per-call
state in the context objects, not on the backend.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Protocol

from rods.env.world import World
from rods.tasks import Signature, Task, ToolCall

FAILURE_CODES: tuple[str, ...] = (
    "param_gen_failed",  # no valid arguments could be produced for a planned call
    "decompose_failed",  # the plan could not be split into turns as required
    "func_sample_failed",  # no function sequence fits the seed's skills/topology
    "vm_exec_failed",  # a ground-truth call errored in the simulator
    "duplicate_func",  # the same call (name + arguments) twice where it makes no sense
    "query_gen_failed",  # no user query could be written for a turn
    "query_verify_failed",  # the judge (or a gate) rejected the queries
    "query_verify_no_tag",  # the judge's reply had no parseable verdict
    "conversation_construct_failed",  # the final task could not be assembled
    "no_prompts",  # the backend returned no queries at all
    "no_pattern",  # the seed has nothing to imitate (e.g. no calls)
    "pipeline_exception",  # an unexpected exception inside a node (a bug; still counted)
)
# Failures that a minimal patch of the initial config can fix (market closed → open, log in, …).
PATCHABLE_CODES: frozenset[str] = frozenset(
    {"param_gen_failed", "vm_exec_failed", "func_sample_failed", "duplicate_func"}
)


class BackendUnavailable(RuntimeError):
    """The backend could not be asked at all: not a bad proposal, so not a counted `Failure`.

    Raised (never returned) by a backend whose model cannot be reached or is misconfigured; it
    escapes the graph (nodes re-raise it), so no partial result is stored and a worker's request
    is retried later instead of being acknowledged as done with nothing staged.
    `retryable`: a transient fault (connection refused, timeout, 5xx, rate limit) that the same
    request may get past later; False for a configuration error (wrong model name, bad key) that
    only a person can fix — `rods synth run` stops on either, a worker retries both with backoff
    and dead-letters after the delivery limit (so a fixed configuration still gets the request).
    """

    retryable = True


class BackendMisconfigured(BackendUnavailable):
    """The model server answered, but refuses this configuration (unknown model, bad API key)."""

    retryable = False


@dataclass(frozen=True)
class Failure:
    code: str  # one of FAILURE_CODES
    detail: str = ""


@dataclass(frozen=True)
class PlanContext:
    seed: Task
    seed_signature: Signature
    classes: tuple[str, ...]  # classes the variant may use (the seed's involved classes)
    attempt: int  # 0-based full attempt number; a backend may vary its plan with it
    rng: random.Random


@dataclass(frozen=True)
class Plan:
    """Function names per turn (`SynthConfig` bounds: 2–6 turns, 1–4 calls per turn), optional
    notes, and optionally the variant's own initial config (a backend that varies the world)."""

    turns: tuple[tuple[str, ...], ...]
    notes: str = ""
    initial_config: dict[str, Any] | None = None  # the variant's own world (None: the seed's)


@dataclass
class ArgContext:
    """Everything known when the arguments of one planned call are generated."""

    function: str
    doc: dict[str, Any]  # bfcl-eval's function doc of `function`
    world: World  # the live simulator after the earlier calls (read its state; do not call it)
    earlier: list[tuple[ToolCall, str]]  # earlier calls of this variant with their result text
    turn: int
    rng: random.Random
    feedback: str = ""  # why the previous proposal for this call failed ("" on the first try)


@dataclass(frozen=True)
class QueryContext:
    """An executed conversation waiting for its user turns."""

    seed: Task
    calls_per_turn: tuple[tuple[ToolCall, ...], ...]
    results_per_turn: tuple[tuple[str, ...], ...]
    initial_config: dict[str, Any]
    rng: random.Random


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reasons: tuple[str, ...] = ()  # why not, in short phrases; used for one repair round


@dataclass
class Usage:
    """Model usage of one backend call (zeros for the procedural backend)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    calls: int = 0

    def add(self, other: Usage) -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cost_usd += other.cost_usd
        self.calls += other.calls


@dataclass
class Proposal:
    """A backend's answer: a value or a failure, and what it cost."""

    value: Any = None
    failure: Failure | None = None
    usage: Usage = field(default_factory=Usage)


class Backend(Protocol):
    """What the graph asks of a backend. Each method returns a `Proposal`:

    - `plan(ctx)` → value: `Plan`
    - `arguments(ctx)` → value: `dict[str, Any]` (keyword arguments of `ctx.function`)
    - `queries(ctx)` → value: `list[str]`, one user query per turn (all turns written together)
    - `judge(task)` → value: `Verdict`, or value None when the backend has no judge
    - `repair(task, verdict)` → value: `list[str]`, rewritten queries after a rejection
    """

    name: str  # recorded as the task's `rods.synthesizer`, e.g. "procedural" or "llm:openai/gpt-4o-mini"

    def plan(self, ctx: PlanContext) -> Proposal: ...

    def arguments(self, ctx: ArgContext) -> Proposal: ...

    def queries(self, ctx: QueryContext) -> Proposal: ...

    def judge(self, task: Task) -> Proposal: ...

    def repair(self, task: Task, verdict: Verdict) -> Proposal: ...
