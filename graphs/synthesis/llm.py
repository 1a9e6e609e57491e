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

Replies: where the server supports it (`json_schema=True`, the default; llama.cpp and vLLM do),
each stage asks for JSON-schema-constrained output (`prompts.*_schema`), so a small model cannot
write a malformed reply or an unknown function name; the parse stays defensive either way. A bad
reply is one `Failure` of the stage's taxonomy code whose detail starts with its kind
(`REPLY_KINDS`: `no_json`, `wrong_shape`, `unknown_function`, `not_in_world`, `names_function`,
`rejected`), and `stats` counts calls, parsed replies, kinds, latency and tokens per stage
(`LLMStats.metrics()`: flat `llm/<stage>/…` keys).

Before the first request a process may call `preflight()`: a missing credential (no api_base
and no provider key) and a server that refuses, or accepts and never answers `GET /models`
within `probe_timeout_s`, are one line at once instead of after a completion's timeout.

Thread-safe: `stats` is locked; otherwise no per-call state on the instance; `litellm` is imported lazily (it is slow to
import and only LLM workers need it), with its cost map read from the package, never fetched.
Token usage comes from the response; cost from `litellm.completion_cost` (0.0 when the model has
no known price, e.g. a local vLLM model).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
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
REPLY_KINDS: tuple[str, ...] = (
    "no_json",  # no JSON value in the reply
    "wrong_shape",  # JSON, but not the stage's shape (types, counts, missing fields)
    "unknown_function",  # a plan names a function the seed's classes do not have
    "not_in_world",  # an id/token argument that appears nowhere in the state or earlier results
    "names_function",  # a written user turn names a function (snake_case name) of the world
    "rejected",  # the provider refused the request for its content (a 4xx: context too long, …)
)
# Reply tokens per stage (schema-bound replies are short; a small model that rambles inside a
# string is cut here, not at the timeout): plan and verdict fixed, queries per turn.
STAGE_TOKENS = {"plan": 160, "arguments": 120, "judge": 100}
QUERY_TOKENS_PER_TURN = 90
_SNAKE_RE = re.compile(r"[A-Za-z]+(?:_[A-Za-z0-9]+)+")
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
    text = str(e)
    if any(isinstance(x, ConnectionRefusedError) for x in chain) or "Connection refused" in text:
        return BackendUnavailable(f"connection refused at {where}")
    if names & {"Timeout", "APITimeoutError", "TimeoutException", "TimeoutError"}:
        return BackendUnavailable(
            f"the model server at {where} sent no reply in time ({_detail(e)}); raise "
            "RODS_SYNTH_TIMEOUT_S if it is only slow"
        )
    if "Missing credentials" in text or "api_key client option must be set" in text:
        return BackendMisconfigured(
            f"no API key for {model}: set the provider's key (e.g. OPENAI_API_KEY) or point "
            "RODS_SYNTH_API_BASE at a server that needs none"
        )
    if "Empty or invalid response" in text or "Invalid response object" in text:
        return BackendMisconfigured(
            f"{where} answered with something that is not an OpenAI chat completion "
            f"({_detail(e)[:120]}); is the api_base the /v1 address of an OpenAI-compatible server?"
        )
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


class LLMStats:
    """Per-stage counts of one backend (all threads): calls, parsed replies, reply kinds,
    seconds and tokens. `metrics()` gives flat keys: `llm/<stage>/calls`, `…/parsed`,
    `…/fail/<kind>`, `…/seconds`, `…/prompt_tokens`, `…/completion_tokens`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._sums: dict[str, float] = {}

    def record(self, stage: str, seconds: float, usage: Usage, kind: str | None) -> None:
        with self._lock:
            self._counts[f"llm/{stage}/calls"] += 1
            self._counts[f"llm/{stage}/fail/{kind}" if kind else f"llm/{stage}/parsed"] += 1
            for key, value in (("seconds", seconds), ("prompt_tokens", usage.prompt_tokens),
                               ("completion_tokens", usage.completion_tokens)):  # fmt: skip
                k = f"llm/{stage}/{key}"
                self._sums[k] = self._sums.get(k, 0.0) + float(value)

    def metrics(self) -> dict[str, float]:
        with self._lock:
            return dict(sorted({**{k: float(v) for k, v in self._counts.items()}, **self._sums}.items()))


def _kind(failure: Failure | None) -> str | None:
    if failure is None:
        return None
    head = failure.detail.split(":", 1)[0]
    return head if head in REPLY_KINDS else "rejected"


def _fail(code: str, kind: str, detail: str) -> Failure:
    return Failure(code, f"{kind}: {detail}"[:300])


def _world_text(state: Any, earlier: list[tuple[Any, str]]) -> str:
    return json.dumps(state, default=str) + " ".join(r for _, r in earlier)


_GROUNDED_RE = re.compile(r"(_id|_token|^id|^token)$")  # values that must come from the world


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
        max_tokens: int = 768,
        num_retries: int = 0,  # litellm's own retries; the dispatcher retries whole requests
        min_turns: int = 2,
        max_turns: int = 5,
        json_schema: bool = True,  # ask for schema-constrained replies (llama.cpp, vLLM, OpenAI)
        probe_timeout_s: float = 5.0,
        few_shot: bool = True,  # a training-split example in the writer's prompt
    ):
        unknown = set(per_stage_models or {}) - set(STAGES)
        if unknown:
            raise ValueError(f"unknown stages {sorted(unknown)} in per_stage_models; known: {STAGES}")
        self.model = model
        self.api_base = api_base
        # A local server needs no key, but the OpenAI client refuses to send without one.
        if api_key is None and api_base and not os.environ.get("OPENAI_API_KEY"):
            api_key = "sk-no-key-needed"
        self.api_key = api_key
        self.temperature = temperature
        self.top_p = top_p
        self.per_stage_models = dict(per_stage_models or {})
        self.timeout_s = timeout_s
        self.max_tokens = max_tokens
        self.num_retries = num_retries
        self.min_turns = min_turns
        self.max_turns = max_turns
        self.json_schema = json_schema
        self.probe_timeout_s = probe_timeout_s
        self.few_shot = few_shot
        self.stats = LLMStats()
        self.name = f"llm:{model}"

    # ------------------------------------------------------------ transport

    def preflight(self) -> None:
        """Raise `BackendMisconfigured`/`BackendUnavailable` now for what would fail every
        request: no credential for a hosted provider, or a server at `api_base` that refuses or
        does not answer `GET /models` within `probe_timeout_s`. Sends no completion."""
        if self.api_base is None:
            litellm = _litellm()
            try:
                env = litellm.validate_environment(self.model)
            except Exception:  # noqa: BLE001 - a provider litellm cannot check: the first call says
                return
            if not env.get("keys_in_environment", True) and self.api_key is None:
                missing = ", ".join(env.get("missing_keys") or ["the provider's key"])
                raise BackendMisconfigured(f"no API key for {self.model}: set {missing}")
            return
        url = self.api_base.rstrip("/") + "/models"
        try:
            with urllib.request.urlopen(url, timeout=self.probe_timeout_s) as r:
                r.read(1 << 20)
        except urllib.error.HTTPError as e:
            if e.code in (502, 503, 504):  # a proxy or server that says it is down
                raise BackendUnavailable(f"model server error {e.code} at {self.api_base} (GET /models)") from None
            return  # it answers; 401/404/501 on /models: not every server lists models; the first call says
        except (TimeoutError, OSError) as e:
            reason = getattr(e, "reason", e)
            if isinstance(reason, ConnectionRefusedError):
                raise BackendUnavailable(f"connection refused at {self.api_base}") from None
            if isinstance(reason, TimeoutError) or "timed out" in str(reason):
                raise BackendUnavailable(
                    f"the model server at {self.api_base} accepted the connection but did not answer "
                    f"in {self.probe_timeout_s:g} s (RODS_SYNTH_PROBE_TIMEOUT_S)"
                ) from None
            raise BackendUnavailable(f"cannot connect to {self.api_base} ({reason})") from None

    def _complete(
        self, stage: str, messages: list[dict[str, str]], schema: dict[str, Any] | None = None,
        budget: int | None = None,
    ) -> tuple[str | None, Usage, str]:
        """(reply text or None, usage, error detail); raises `BackendUnavailable` (see above)."""
        litellm = _litellm()
        model = self.per_stage_models.get(stage, self.model)
        usage = Usage(calls=1)
        extra: dict[str, Any] = {}
        if schema is not None and self.json_schema:
            extra["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": stage, "schema": schema, "strict": True},
            }
        try:
            response = litellm.completion(
                model=model,
                messages=messages,
                temperature=self.temperature,
                top_p=self.top_p,
                max_tokens=min(self.max_tokens, budget or STAGE_TOKENS.get(stage, self.max_tokens)),
                api_base=self.api_base,
                api_key=self.api_key,
                timeout=self.timeout_s,
                num_retries=self.num_retries,
                **extra,
            )
        except Exception as e:  # noqa: BLE001 - classified: content problems are counted failures
            fault = provider_error(e, model, self.api_base)
            if fault is not None:
                raise fault from e
            return None, usage, f"rejected: {type(e).__name__}: {_detail(e)}"[:300]
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
            return None, usage, "wrong_shape: reply without a message"
        return text, usage, ""

    def _ask(
        self, stage: str, messages: list[dict[str, str]], tag: str, code: str,
        schema: dict[str, Any] | None = None, budget: int | None = None,
    ) -> tuple[Any, Usage, Failure | None]:  # fmt: skip
        text, usage, error = self._complete(stage, messages, schema, budget)
        if text is None:
            return None, usage, Failure(code, error)
        try:
            return extract_json(text, tag), usage, None
        except ValueError as e:
            return None, usage, _fail(code, "no_json", f"{e}; reply began {text[:80]!r}")

    def _timed(self, stage: str, fn: Any, *args: Any) -> Proposal:
        t0 = time.perf_counter()
        proposal: Proposal = fn(*args)
        self.stats.record(stage, time.perf_counter() - t0, proposal.usage, _kind(proposal.failure))
        return proposal

    # ------------------------------------------------------------ stages

    def plan(self, ctx: PlanContext) -> Proposal:
        return self._timed("plan", self._plan, ctx)

    def arguments(self, ctx: ArgContext) -> Proposal:
        return self._timed("arguments", self._arguments, ctx)

    def queries(self, ctx: QueryContext) -> Proposal:
        return self._timed("queries", self._queries, ctx)

    def judge(self, task: Task) -> Proposal:
        return self._timed("judge", self._judge, task)

    def repair(self, task: Task, verdict: Verdict) -> Proposal:
        return self._timed("repair", self._repair, task, verdict)

    def _plan(self, ctx: PlanContext) -> Proposal:
        docs = [d for cls in ctx.classes for d in function_docs()[cls]]
        messages = prompts.plan_messages(
            ctx.seed, ctx.seed_signature, docs, ctx.attempt, self.min_turns, self.max_turns
        )
        names = [d["name"] for d in docs]
        schema = prompts.plan_schema(names, self.min_turns, self.max_turns)
        value, usage, failure = self._ask("plan", messages, "plan", "decompose_failed", schema)
        if failure is not None:
            return Proposal(failure=failure, usage=usage)
        turns = value.get("turns") if isinstance(value, dict) else value
        if not isinstance(turns, list) or not all(
            isinstance(t, list) and all(isinstance(f, str) for f in t) for t in turns
        ):
            return Proposal(failure=_fail("decompose_failed", "wrong_shape", "plan is not a list of lists of names"), usage=usage)
        unknown = sorted({f for t in turns for f in t} - set(names))
        if unknown:
            return Proposal(failure=_fail("func_sample_failed", "unknown_function", ", ".join(unknown)[:200]), usage=usage)
        notes = value.get("notes", "") if isinstance(value, dict) else ""
        return Proposal(Plan(tuple(tuple(t) for t in turns), str(notes)), usage=usage)

    def _arguments(self, ctx: ArgContext) -> Proposal:
        state = ctx.world.public_state()
        messages = prompts.argument_messages(ctx.doc, state, ctx.earlier, ctx.turn, ctx.feedback)
        value, usage, failure = self._ask(
            "arguments", messages, "arguments", "param_gen_failed", prompts.arguments_schema(ctx.doc)
        )
        if failure is not None:
            return Proposal(failure=failure, usage=usage)
        params = ctx.doc.get("parameters", {})
        known = set(params.get("properties", {}))
        if not isinstance(value, dict):
            return Proposal(failure=_fail("param_gen_failed", "wrong_shape", "arguments are not an object"), usage=usage)
        value = {k: v for k, v in value.items() if k in known}  # drop invented parameters
        missing = [p for p in params.get("required", []) if p not in value]
        if missing:
            return Proposal(failure=_fail("param_gen_failed", "wrong_shape", f"missing {missing}"), usage=usage)
        world = _world_text(state, ctx.earlier)
        for p, v in value.items():
            if _GROUNDED_RE.search(p) and isinstance(v, str | int) and str(v) not in world:
                return Proposal(
                    failure=_fail("param_gen_failed", "not_in_world", f"{p}={v!r} is in neither the state nor an earlier result"),
                    usage=usage,
                )  # fmt: skip
        return Proposal(value, usage=usage)

    def _query_list(self, value: Any, n: int, usage: Usage, names: set[str]) -> Proposal:
        if isinstance(value, dict):
            value = value.get("queries")
        if not isinstance(value, list) or not value:
            return Proposal(failure=_fail("no_prompts", "wrong_shape", "no list of queries"), usage=usage)
        if len(value) != n or not all(isinstance(q, str) and q.strip() for q in value):
            return Proposal(failure=_fail("query_gen_failed", "wrong_shape", f"expected {n} strings"), usage=usage)
        named = sorted({w for q in value for w in _SNAKE_RE.findall(q)} & names)
        if named:
            return Proposal(failure=_fail("query_gen_failed", "names_function", ", ".join(named)), usage=usage)
        return Proposal([q.strip() for q in value], usage=usage)

    @staticmethod
    def _names(classes: list[str]) -> set[str]:
        return {d["name"] for cls in classes for d in function_docs().get(cls, ())}

    def _queries(self, ctx: QueryContext) -> Proposal:
        example = (
            prompts.query_example(ctx.seed.involved_classes, ctx.seed.id, ctx.rng.randrange(1 << 30))
            if self.few_shot
            else None
        )
        messages = prompts.query_messages(ctx.calls_per_turn, ctx.results_per_turn, example)
        n = len(ctx.calls_per_turn)
        value, usage, failure = self._ask(
            "queries", messages, "queries", "query_gen_failed", prompts.queries_schema(n),
            20 + QUERY_TOKENS_PER_TURN * n,
        )
        if failure is not None:
            return Proposal(failure=failure, usage=usage)
        return self._query_list(value, n, usage, self._names(ctx.seed.involved_classes))

    def _judge(self, task: Task) -> Proposal:
        value, usage, failure = self._ask(
            "judge", prompts.judge_messages(task), "verdict", "query_verify_no_tag", prompts.VERDICT_SCHEMA
        )
        if failure is not None:
            return Proposal(failure=failure, usage=usage)
        if not isinstance(value, dict) or not isinstance(value.get("ok"), bool):
            return Proposal(failure=_fail("query_verify_no_tag", "wrong_shape", "no boolean 'ok'"), usage=usage)
        reasons = value.get("reasons") or []
        reasons = tuple(str(r) for r in reasons) if isinstance(reasons, list) else (str(reasons),)
        return Proposal(Verdict(value["ok"], reasons), usage=usage)

    def _repair(self, task: Task, verdict: Verdict) -> Proposal:
        value, usage, failure = self._ask(
            "repair", prompts.repair_messages(task, verdict.reasons), "queries", "query_gen_failed",
            prompts.queries_schema(task.n_turns), 20 + QUERY_TOKENS_PER_TURN * task.n_turns,
        )  # fmt: skip
        if failure is not None:
            return Proposal(failure=failure, usage=usage)
        return self._query_list(value, task.n_turns, usage, self._names(task.involved_classes))
