"""The LLM backend: every language stage is one `litellm.completion` call.

Works with any model string litellm knows (`openai/…`, `hosted_vllm/…` with `api_base`,
`anthropic/…`); a per-stage override picks another model for one stage (e.g. a stronger judge).
Replies are parsed defensively (`extract_json`): JSON inside the stage's tag, else in a fenced
block, else the first JSON value in the text; `<think>` blocks are dropped first. A reply that
does not parse, or a request the provider rejects for its content (context too long, content
policy, any other 4xx) is a `Failure` with the stage's code — the graph counts it and retries
within its bounds; nothing here raises for a bad reply.

Errors that say nothing about the content raise instead (`provider_error` classifies them), so a
worker's request is retried later rather than acknowledged as done with nothing staged:
- `BackendUnavailable` (transient): connection refused or reset, timeout, HTTP 5xx, 429 rate
  limit — after litellm's own `num_retries`;
- `BackendMisconfigured` (configuration): 404 unknown model, 401/403 bad key, a model string
  litellm cannot route. Retrying cannot fix these, but they are raised the same way: `rods synth
  run` stops with one line, a worker's request is retried with backoff and dead-lettered with the
  message as its last error (so fixing the configuration in time still serves it).

Thread-safe: no per-call state on the instance; `litellm` is imported lazily (it is slow to
import and only LLM workers need it), with its cost map read from the package, never fetched.
Token usage comes from the response; cost from `litellm.completion_cost` (0.0 when the model has
no known price, e.g. a local vLLM model).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

from graphs.synthesis import prompts
from graphs.synthesis.backend import (
    ArgContext,
    BackendMisconfigured,
    BackendUnavailable,
    Failure,
    Plan,
    PlanContext,
    Proposal,
    QueryContext,
    Usage,
    Verdict,
)
from rods.tasks import Task, function_docs

STAGES: tuple[str, ...] = ("plan", "arguments", "queries", "judge", "repair")
_THINK_RE = re.compile(r"<think>.*?(</think>|$)", re.DOTALL | re.IGNORECASE)
_FENCE_RE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def _litellm() -> Any:
    # A worker must not reach the network at import (litellm fetches its price list otherwise).
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True  # else every unpriced model prints a provider list
    return litellm


def warm_up() -> None:
    """Import litellm now (seconds on a busy CPU): a worker does it at start, not inside the
    first task's time limit."""
    _litellm()


def extract_json(text: str, tag: str) -> Any:
    """The JSON value of a reply: in `<tag>…</tag>`, else a fenced block, else the first JSON
    object or array in the text. Raises ValueError if none parses."""
    text = _THINK_RE.sub("", text or "")
    candidates: list[str] = []
    m = re.search(rf"<{tag}>(.*?)</{tag}>", text, re.DOTALL | re.IGNORECASE)
    if m:
        candidates.append(m.group(1))
    candidates += _FENCE_RE.findall(text)
    candidates.append(text)
    decoder = json.JSONDecoder()
    for blob in candidates:
        blob = blob.strip()
        for i, ch in enumerate(blob):
            if ch in "[{":
                try:
                    return decoder.raw_decode(blob[i:])[0]
                except json.JSONDecodeError:
                    continue
    raise ValueError(f"no JSON found for <{tag}>")


def _chain(e: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    while e is not None and e not in out and len(out) < 10:
        out.append(e)
        e = e.__cause__ or e.__context__  # type: ignore[assignment]
    return out


def _detail(e: BaseException) -> str:
    """The provider's own words: litellm prefixes them with `…Exception - `."""
    text = str(e).strip()
    return text.rsplit(" - ", 1)[-1].strip()[:200] if " - " in text else text[:200]


def provider_error(
    e: BaseException, model: str, api_base: str | None
) -> BackendUnavailable | None:
    """The exception to raise for a litellm error, or None when it is about the content.

    Pure but for the exception's attributes; see the module docstring for the classes."""
    where = api_base or f"the {model.split('/', 1)[0]} API"
    chain = _chain(e)
    names = {c.__name__ for x in chain for c in type(x).__mro__}
    status = getattr(e, "status_code", None)
    if any(isinstance(x, ConnectionRefusedError) for x in chain):
        return BackendUnavailable(f"connection refused at {where}")
    if names & {"Timeout", "APITimeoutError", "TimeoutException", "TimeoutError"}:
        return BackendUnavailable(f"no reply from {where} in time ({_detail(e)})")
    # after timeouts: openai's APITimeoutError is an APIConnectionError
    if names & {"APIConnectionError", "ConnectError", "ConnectionError", "RemoteProtocolError"}:
        root = chain[-1]
        return BackendUnavailable(f"cannot connect to {where} ({type(root).__name__}: {root})")
    if "NotFoundError" in names or status == 404:
        return BackendMisconfigured(f"model not found: {model} at {where} ({_detail(e)})")
    if names & {"AuthenticationError", "PermissionDeniedError"} or status in (401, 403):
        return BackendMisconfigured(
            f"the model server at {where} refused the API key ({_detail(e)}); set the "
            "provider's key (e.g. OPENAI_API_KEY) or RODS_SYNTH_API_BASE"
        )
    if "LLM Provider NOT provided" in str(e):
        return BackendMisconfigured(
            f"litellm cannot route the model string {model!r}: use <provider>/<model>, "
            "e.g. openai/gpt-4o-mini or hosted_vllm/Qwen/Qwen3-32B"
        )
    if names & {"RateLimitError", "ServiceUnavailableError", "InternalServerError",
                "BadGatewayError"} or (isinstance(status, int) and (status >= 500 or status == 429)):  # fmt: skip
        return BackendUnavailable(f"model server error {status or '?'} at {where}: {_detail(e)}")
    return None


class LLMBackend:
    """Backend over litellm. `per_stage_models` maps a stage (see STAGES) to a model string."""

    def __init__(
        self,
        model: str,
        api_base: str | None = None,
        temperature: float = 1.0,
        top_p: float = 0.7,
        per_stage_models: Mapping[str, str] | None = None,
        api_key: str | None = None,
        timeout_s: float = 120.0,  # one completion; a stalled server must not hold a worker
        max_tokens: int = 2048,
        num_retries: int = 2,  # litellm's own retries with backoff on transport/rate errors
        min_turns: int = 2,
        max_turns: int = 5,
    ):
        unknown = set(per_stage_models or {}) - set(STAGES)
        if unknown:
            raise ValueError(f"unknown stages {sorted(unknown)} in per_stage_models; known: {STAGES}")
        self.model = model
        self.api_base = api_base
        self.api_key = api_key
        self.temperature = temperature
        self.top_p = top_p
        self.per_stage_models = dict(per_stage_models or {})
        self.timeout_s = timeout_s
        self.max_tokens = max_tokens
        self.num_retries = num_retries
        self.min_turns = min_turns
        self.max_turns = max_turns
        self.name = f"llm:{model}"

    # ------------------------------------------------------------ transport

    def _complete(self, stage: str, messages: list[dict[str, str]]) -> tuple[str | None, Usage, str]:
        """(reply text or None, usage, error detail); raises `BackendUnavailable` (see above)."""
        litellm = _litellm()
        model = self.per_stage_models.get(stage, self.model)
        usage = Usage(calls=1)
        try:
            response = litellm.completion(
                model=model,
                messages=messages,
                temperature=self.temperature,
                top_p=self.top_p,
                max_tokens=self.max_tokens,
                api_base=self.api_base,
                api_key=self.api_key,
                timeout=self.timeout_s,
                num_retries=self.num_retries,
            )
        except Exception as e:  # noqa: BLE001 - classified: content problems are counted failures
            fault = provider_error(e, model, self.api_base)
            if fault is not None:
                raise fault from e
            return None, usage, f"{type(e).__name__}: {_detail(e)}"[:300]
        u = getattr(response, "usage", None)
        usage.prompt_tokens = int(getattr(u, "prompt_tokens", 0) or 0)
        usage.completion_tokens = int(getattr(u, "completion_tokens", 0) or 0)
        try:
            usage.cost_usd = float(litellm.completion_cost(completion_response=response) or 0.0)
        except Exception:  # noqa: BLE001 - no price known for this model (e.g. a local server)
            usage.cost_usd = 0.0
        try:
            text = response.choices[0].message.content or ""
        except (AttributeError, IndexError):
            return None, usage, "reply without a message"
        return text, usage, ""

    def _ask(self, stage: str, messages: list[dict[str, str]], tag: str, code: str) -> tuple[Any, Usage, Failure | None]:
        text, usage, error = self._complete(stage, messages)
        if text is None:
            return None, usage, Failure(code, error)
        try:
            return extract_json(text, tag), usage, None
        except ValueError as e:
            return None, usage, Failure(code, str(e))

    # ------------------------------------------------------------ stages

    def plan(self, ctx: PlanContext) -> Proposal:
        docs = [d for cls in ctx.classes for d in function_docs()[cls]]
        messages = prompts.plan_messages(
            ctx.seed, ctx.seed_signature, docs, ctx.attempt, self.min_turns, self.max_turns
        )
        value, usage, failure = self._ask("plan", messages, "plan", "decompose_failed")
        if failure is not None:
            return Proposal(failure=failure, usage=usage)
        turns = value.get("turns") if isinstance(value, dict) else value
        if not isinstance(turns, list) or not all(
            isinstance(t, list) and all(isinstance(f, str) for f in t) for t in turns
        ):
            return Proposal(failure=Failure("decompose_failed", "plan is not a list of lists of names"), usage=usage)
        notes = value.get("notes", "") if isinstance(value, dict) else ""
        return Proposal(Plan(tuple(tuple(t) for t in turns), str(notes)), usage=usage)

    def arguments(self, ctx: ArgContext) -> Proposal:
        messages = prompts.argument_messages(
            ctx.doc, ctx.world.public_state(), ctx.earlier, ctx.turn, ctx.feedback
        )
        value, usage, failure = self._ask("arguments", messages, "arguments", "param_gen_failed")
        if failure is not None:
            return Proposal(failure=failure, usage=usage)
        params = ctx.doc.get("parameters", {})
        known = set(params.get("properties", {}))
        if not isinstance(value, dict):
            return Proposal(failure=Failure("param_gen_failed", "arguments are not an object"), usage=usage)
        value = {k: v for k, v in value.items() if k in known}  # drop invented parameters
        missing = [p for p in params.get("required", []) if p not in value]
        if missing:
            return Proposal(failure=Failure("param_gen_failed", f"missing {missing}"), usage=usage)
        return Proposal(value, usage=usage)

    def _query_list(self, value: Any, n: int, usage: Usage) -> Proposal:
        if isinstance(value, dict):
            value = value.get("queries")
        if not isinstance(value, list) or not value:
            return Proposal(failure=Failure("no_prompts", "no list of queries"), usage=usage)
        if len(value) != n or not all(isinstance(q, str) and q.strip() for q in value):
            return Proposal(failure=Failure("query_gen_failed", f"expected {n} strings"), usage=usage)
        return Proposal([q.strip() for q in value], usage=usage)

    def queries(self, ctx: QueryContext) -> Proposal:
        messages = prompts.query_messages(ctx.calls_per_turn, ctx.results_per_turn)
        value, usage, failure = self._ask("queries", messages, "queries", "query_gen_failed")
        if failure is not None:
            return Proposal(failure=failure, usage=usage)
        return self._query_list(value, len(ctx.calls_per_turn), usage)

    def judge(self, task: Task) -> Proposal:
        value, usage, failure = self._ask(
            "judge", prompts.judge_messages(task), "verdict", "query_verify_no_tag"
        )
        if failure is not None:
            return Proposal(failure=failure, usage=usage)
        if not isinstance(value, dict) or not isinstance(value.get("ok"), bool):
            return Proposal(failure=Failure("query_verify_no_tag", "no boolean 'ok'"), usage=usage)
        reasons = value.get("reasons") or []
        reasons = tuple(str(r) for r in reasons) if isinstance(reasons, list) else (str(reasons),)
        return Proposal(Verdict(value["ok"], reasons), usage=usage)

    def repair(self, task: Task, verdict: Verdict) -> Proposal:
        value, usage, failure = self._ask(
            "repair", prompts.repair_messages(task, verdict.reasons), "queries", "query_gen_failed"
        )
        if failure is not None:
            return Proposal(failure=failure, usage=usage)
        return self._query_list(value, task.n_turns, usage)
