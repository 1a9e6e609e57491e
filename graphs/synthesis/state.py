"""The synthesis graph's state, its run-wide dependencies, its settings and its result.

What lives here:
- `SynthConfig`: the few knobs of one synthesis run (bounds of every loop, gate limits).
- `SynthDeps`: what every node needs but never changes (backend, config, caches, dedup indexes);
  passed as LangGraph's run context, never stored in the state.
- `SynthState`: the narrow state the nodes read and update. Per-attempt fields are reset by the
  `retry` node; counters bound every loop (attempts per variant, plan parse retries, config
  patches, judge repairs); outputs accumulate through reducers (`accepted`, counts, latency).
- `SynthesisResult`: what `synthesize` returns, and `result_metrics` its flat metrics.
"""

from __future__ import annotations

import operator
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field

from graphs.synthesis.backend import Backend, Plan, Usage, Verdict
from rods.env.reward import GroundTruthCache
from rods.semantics import CODE_HELP as SEMANTIC_HELP
from rods.signature import MATCH_TOLERANCE
from rods.tasks import Signature, Task, ToolCall


class SynthConfig(BaseModel):
    """Bounds and limits of one synthesis run (paper defaults)."""

    model_config = ConfigDict(frozen=True)
    max_attempts: int = 3  # full attempts (plan → … → augment) per requested variant
    max_plan_retries: int = 3  # re-asks of the planner after an unusable plan, per attempt
    max_repairs: int = 1  # query rewrites after a judge rejection, per attempt
    max_patches: int = 3  # minimal initial-config patches per attempt
    max_arg_retries: int = 2  # re-asks for one call's arguments (bad, duplicate, or erroring)
    max_string_chars: int = 200  # longest string argument of a ground-truth call
    max_list_items: int = 5  # longest list argument of a ground-truth call
    signature_tolerance: float = MATCH_TOLERANCE  # largest structural distance to the seed
    near_duplicate: float = 0.5  # shingle Jaccard at or above which two tasks are duplicates (BFCL: twins ≥ 0.86, unrelated median 0.06)
    min_turns: int = 2  # planned user turns (before augment adds its turns)
    max_turns: int = 6
    max_calls_per_turn: int = 4


def merge_counts(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    """Reducer: add counts key by key."""
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + v
    return out


def merge_seconds(a: Mapping[str, float], b: Mapping[str, float]) -> dict[str, float]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0.0) + v
    return out


def merge_usage(a: Usage, b: Usage) -> Usage:
    out = Usage()
    out.add(a)
    out.add(b)
    return out


Outcome = Literal["ok", "retry", "patched", "repair", "failed", "accepted"]


class SynthState(TypedDict, total=False):
    # --- input (set once)
    seed: Task
    n_variants: int
    # --- extract_skills
    seed_signature: Signature
    # --- loop counters
    slot: int  # variants finished (accepted or given up)
    attempt: int  # full attempts spent on the current variant
    attempts_total: int
    plan_retries: int  # planner re-asks within the current attempt
    patches: int  # config patches within the current attempt
    repairs: int  # judge repairs within the current attempt
    # --- per attempt
    outcome: Outcome  # what the last node concluded; read by the routers
    plan: Plan | None
    initial_config: dict[str, Any]
    calls_per_turn: tuple[tuple[ToolCall, ...], ...] | None
    results_per_turn: tuple[tuple[str, ...], ...] | None
    draft: Task | None
    verdict: Verdict | None
    # --- outputs (reducers accumulate)
    accepted: Annotated[list[Task], operator.add]
    failures: Annotated[dict[str, int], merge_counts]
    rejections: Annotated[dict[str, int], merge_counts]
    patch_counts: Annotated[dict[str, int], merge_counts]
    latency_s: Annotated[dict[str, float], merge_seconds]
    usage: Annotated[Usage, merge_usage]


@dataclass
class SynthDeps:
    """Run-wide dependencies of the nodes (LangGraph run context). Not shared across runs,
    except the dedup indexes, which lock themselves."""

    backend: Backend
    config: SynthConfig
    rng: random.Random
    cache: GroundTruthCache
    eval_index: Any  # gates.DedupIndex over the held-out tasks (None: guard off)
    pool_index: Any  # gates.DedupIndex over the pool plus this run's accepted variants
    request_id: str | None = None
    notes: dict[str, Any] = field(default_factory=dict)


class SynthesisResult(BaseModel):
    """The outcome of one `synthesize` call: validated tasks and what it took."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    request_id: str | None = None
    seed_id: str
    tasks: list[Task] = Field(default_factory=list)
    failures: dict[str, int] = Field(default_factory=dict)  # backend/pipeline codes (FAILURE_CODES)
    rejections: dict[str, int] = Field(default_factory=dict)  # gate and augment reason codes
    patches: dict[str, int] = Field(default_factory=dict)  # config patches applied, by kind
    attempts: int = 0
    requested: int = 0
    latency_s: dict[str, float] = Field(default_factory=dict)  # wall seconds per stage
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    model_calls: int = 0
    exceptions: list[str] = Field(default_factory=list)  # first few `pipeline_exception` details


def result_metrics(result: SynthesisResult) -> dict[str, float]:
    """Flat slash-named metrics of one result (sum them across results for a run)."""
    out: dict[str, float] = {
        "synth/requested": float(result.requested),
        "synth/accepted": float(len(result.tasks)),
        "synth/attempts": float(result.attempts),
        "synth/accept_rate": len(result.tasks) / result.attempts if result.attempts else float("nan"),
        "synth/attempts_per_task": (
            result.attempts / len(result.tasks) if result.tasks else float("nan")
        ),
        "synth/tokens": float(result.prompt_tokens + result.completion_tokens),
        "synth/cost_usd": float(result.cost_usd),
    }
    for reason, n in sorted(result.rejections.items()):
        out[f"synth/reject/{reason}"] = float(n)
    for code, n in sorted(result.failures.items()):
        out[f"synth/fail/{code}"] = float(n)
    for kind, n in sorted(result.patches.items()):
        out[f"synth/patch/{kind}"] = float(n)
    for stage, s in sorted(result.latency_s.items()):
        out[f"time/synth/{stage}"] = float(s)
    return out


# ---------------------------------------------------------------- what each code means

# Every failure code (`backend.FAILURE_CODES`) and rejection reason (`gates.REJECTION_REASONS`)
# → (what it means, what to change). `rods synth codes` prints it; a unit test checks that every
# code has an entry, so a new code cannot ship unexplained.
CODE_HELP: dict[str, tuple[str, str]] = {
    # --- failures: an attempt could not produce a task
    "param_gen_failed": (
        "no valid arguments could be produced for a planned call, after the re-asks",
        "the seed's world may lack the state the call needs; llm: a stronger model",
    ),
    "decompose_failed": (
        "the plan could not be split into 2–5 turns of 1–3 calls of the seed's classes",
        "llm: a model that follows the plan format; check --model and --api-base",
    ),
    "func_sample_failed": (
        "no function sequence of the seed's classes fits its skills and topology",
        "the seed's structure is rare: pick another seed, or raise RODS_SYNTH_SIGNATURE_TOLERANCE",
    ),
    "vm_exec_failed": (
        "a ground-truth call raised an error in the simulator and no config patch fixed it",
        "occasional is normal; many: the backend proposes calls its world cannot execute",
    ),
    "duplicate_func": (
        "the same call (name and arguments) twice where that makes no sense",
        "llm: a higher temperature or another model",
    ),
    "query_gen_failed": (
        "no user query could be written for a turn",
        "llm: a stronger model; procedural: the function has no phrase template yet",
    ),
    "query_verify_failed": (
        "the judge or a gate rejected the user turns after the allowed repair",
        "see the rejection codes counted beside it",
    ),
    "query_verify_no_tag": (
        "the judge's reply had no parseable verdict",
        "a judge model that follows the output format",
    ),
    "conversation_construct_failed": (
        "the final task could not be assembled from its turns, calls and queries",
        "a malformed backend reply or a bug: rerun with `rods --debug` and report the seed",
    ),
    "no_prompts": (
        "the backend returned no user turns at all",
        "llm: the server answered with empty text; check the model name and the server's log",
    ),
    "no_pattern": (
        "the seed has nothing to imitate (no ground-truth calls)",
        "choose a seed with calls (`rods env replay SEED` shows them)",
    ),
    "pipeline_exception": (
        "an unexpected exception inside a graph node (counted, never a crash)",
        "read the result's `exceptions`; report it with the seed id",
    ),
    # --- rejections: a finished task failed a critique gate (or the augmentation)
    "reexec_failed": (
        "re-executed in a fresh simulator, the ground truth does not parse, bind or reproduce itself",
        "make every call depend only on initial_config and earlier results",
    ),
    "gt_call_error": (
        "a ground-truth call returns an error message when executed",
        "give initial_config the state the call needs, or fix the call's arguments",
    ),
    "func_unavailable": (
        "a ground-truth call uses a function of no involved class, or a held-out one before its reveal",
        "add the class to involved_classes, or move the call after the turn that reveals it",
    ),
    "string_too_long": (
        "a ground-truth string argument is longer than 200 characters",
        "shorten it (limit: SynthConfig.max_string_chars)",
    ),
    "list_too_long": (
        "a ground-truth list argument has more than 5 items",
        "shorten it (limit: SynthConfig.max_list_items)",
    ),
    "query_empty": (
        "a user turn is empty (only a miss_func reveal turn may be)",
        "write the turn's request",
    ),
    "query_names_function": (
        "a user turn names a function in code form (post_tweet, ignitionMode, name( …)",
        "state the goal in plain words",
    ),
    "query_names_parameter": (
        "a user turn names a parameter in code form (file_name, userId …)",
        "state the value in plain words",
    ),
    "query_leaks_reasoning": (
        "a user turn holds step-by-step reasoning (Step 1:, <think>, …)",
        "users state goals, not plans: remove the reasoning",
    ),
    "signature_far": (
        "the structure (topology, depth, calls per turn, skills) is farther from the seed's than the tolerance",
        "keep the seed's structure, or raise RODS_SYNTH_SIGNATURE_TOLERANCE (default 0.15)",
    ),
    "pool_duplicate": (
        "near-duplicate (shingle Jaccard ≥ 0.5) of a pool task or of an earlier task of the run or file",
        "vary the world and the story more; occasional ones are the guard working",
    ),
    "eval_duplicate": (
        "near-duplicate of a held-out evaluation task, whatever its id (contamination guard)",
        "nothing to change: held-out data never enters training; start from training seeds",
    ),
    "judge_rejected": (
        "the LLM judge rejected the task after the allowed repair",
        "read the judge's reason in the worker log; a stronger writer model, or a milder judge",
    ),
    "judge_no_verdict": (
        "the judge's reply had no parseable verdict",
        "a judge model that follows the output format",
    ),
    "augment_no_function": (
        "miss_func: no turn introduces a function that could be held out until it",
        "plan a later turn that uses a function not used before",
    ),
    "augment_no_value": (
        "miss_param: no user turn states an argument value verbatim that could be withheld",
        "state a concrete value (a name, an amount) in some turn",
    ),
    # --- final checks: the augmented task, per category (gates.check_final)
    "final_miss_param_shape": (
        "the miss_param task has no turn with calls right after an incomplete (empty) turn",
        "procedural: a bug in augment's withholding; llm: the augmenter did not leave a turn incomplete",
    ),
    "final_miss_param_unsupplied": (
        "the turn after the incomplete one does not state the withheld value",
        "the clarification turn must give the value verbatim; check augment's supplying turn",
    ),
    "final_miss_param_leak": (
        "the 'missing' value is still in the incomplete turn, so nothing was withheld",
        "remove every spelling of the value (numbers, case) from the incomplete turn",
    ),
    "final_miss_param_cue": (
        "the incomplete turn announces the gap (e.g. 'I will specify'), a shortcut BFCL's users never give",
        "drop the cue: the request should simply be incomplete",
    ),
    "final_miss_func_shape": (
        "the reveal turn of the missing function is not empty, or the turn before it makes calls",
        "procedural: a bug in augment's hiding; llm: re-run augment",
    ),
    "final_miss_func_visible": (
        "a hidden function is called or named before the turn that reveals it",
        "hide it until its turn: no call and no mention before",
    ),
    "final_miss_func_unused": (
        "no hidden function is called from its reveal turn on, so hiding it tests nothing",
        "hide a function the later turns actually need",
    ),
    "final_long_context_short": (
        "no ground-truth result grows by more than 200 characters in the long-context world",
        "plan calls that read long results (listings, searches, histories) on the ground-truth path",
    ),
    # --- the semantic gate (rods.semantics; one code per rule)
    **SEMANTIC_HELP,
}
