"""One settings object per process, read from the environment (prefix `RODS_`, and `REDIS_URL`).

Fields are grouped by concern, each with a one-line comment. `Settings()` reads the environment
once; pass the object down instead of reading the environment again. The pure rule objects
(`DetectorRules`, `PoolRules`) are built from it with `detector_rules()` and `pool_rules()`.

A value that does not fit its field raises `SettingsError` (a `ValueError`), one line that names
the environment variable, the value and what is allowed — never pydantic's whole report.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from rods.boundary import DetectorRules
from rods.pool import PoolRules


class SettingsError(ValueError):
    """An environment variable (or a keyword) that does not fit its setting."""


def describe_errors(error: ValidationError, prefix: str = "RODS_") -> str:
    """One line per bad field: `RODS_X='value': what is allowed`, joined with '; '."""
    lines = []
    for e in error.errors():
        if not e["loc"]:  # a rule across fields
            lines.append(_allowed(e))
            continue
        field = str(e["loc"][0])
        name = "REDIS_URL" if field == "redis_url" else prefix + field.upper()
        source = "" if name in os.environ else " (given as a keyword)"
        lines.append(f"{name}={e.get('input')!r}{source}: {_allowed(e)}")
    return "invalid setting: " + "; ".join(lines)


def _allowed(e: Any) -> str:
    kind, ctx = e.get("type", ""), e.get("ctx") or {}
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')}"
    bounds = {"greater_than": ">", "greater_than_equal": "≥", "less_than": "<", "less_than_equal": "≤"}
    if kind in bounds:
        return f"must be {bounds[kind]} {next(iter(ctx.values()), '')}"
    if kind.startswith("int_"):
        return "must be a whole number, e.g. 3"
    if kind.startswith("float_"):
        return "must be a number, e.g. 0.5"
    if kind.startswith("bool_"):
        return "must be true or false (also 1/0, yes/no)"
    return str(e.get("msg", "invalid value")).removeprefix("Value error, ")


def redis_url_source(environ: dict[str, str] | None = None) -> str:
    """Where `Settings().redis_url` comes from, in words, for the line a process starts with."""
    env = os.environ if environ is None else environ
    for name in ("REDIS_URL", "RODS_REDIS_URL"):
        if env.get(name):
            return f"from {name}"
    return "the default: REDIS_URL is unset"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RODS_", extra="ignore", frozen=True)

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as e:
            raise SettingsError(describe_errors(e)) from None

    # --- Redis connection
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("REDIS_URL", "RODS_REDIS_URL", "redis_url"),
    )  # the one Redis every process of a run talks to
    run: str = "default"  # run name: every key lives under rods:<run>:
    connect_timeout_s: float = Field(5.0, gt=0.0)  # TCP connect timeout per attempt
    socket_timeout_s: float = Field(10.0, gt=0.0)  # reply timeout of one command
    connect_retries: int = Field(6, ge=1)  # attempts (with exponential backoff) on connection errors
    backoff_base_s: float = Field(0.05, ge=0.0)  # first backoff; doubles per attempt
    backoff_cap_s: float = Field(2.0, ge=0.0)  # longest single backoff

    # --- detector (rods.boundary)
    # The detector's regions of one step's group mean r̄ (what is requested, what is counted):
    # not the retirement thresholds `retire_*` below, which judge a task's recent r̄.
    hard_below: float = Field(0.20, ge=0.0, le=1.0)  # RODS_HARD_BELOW: r̄ below this is the hard region
    mastered_above: float = Field(0.85, ge=0.0, le=1.0)  # RODS_MASTERED_ABOVE: r̄ above this is the mastered region
    request_budget: int = Field(16, ge=0)  # M: most boundary requests per policy step
    category_quota: int = Field(4, ge=0)  # most requests per category per step
    cooldown_steps: int = Field(10, ge=0)  # steps before the same task may be requested again
    n_variants: int = Field(1, ge=1)  # variants asked per request
    min_var: float = Field(1e-6, ge=0.0)  # ε: a group needs observed reward variance above this to be requested

    # --- replay buffer (rods.pool)
    beta: float = Field(0.20, ge=0.0, le=1.0)  # most staged tasks promoted per epoch, as a fraction of the active pool
    p_max: int = Field(400, ge=0)  # most synthetic tasks active at once
    trial_below: float = Field(0.20, ge=0.0, le=1.0)  # synthetic task dropped when its first r̄ is below this
    # retirement: the mean of a task's last `history_k` group means (its recent r̄) against
    # these (PoolRules fields of the same names); not the detector's regions above
    retire_mastered_above: float = Field(0.95, ge=0.0, le=1.0)  # RODS_RETIRE_MASTERED_ABOVE: above → retired, mastered
    retire_hard_below: float = Field(0.20, ge=0.0, le=1.0)  # RODS_RETIRE_HARD_BELOW: below → retired, hard
    retire_min_obs: int = Field(2, ge=1)  # observations before mastered/hard retirement applies
    history_k: int = Field(4, ge=1, le=255)  # group means kept per task
    stale_steps: int = Field(200, ge=1)  # unobserved this many steps → retired as stale
    seeds_can_retire: bool = False  # whether the 400 seeds may ever retire
    sample_mode: Literal["uniform", "boundary"] = "uniform"  # how the trainer samples the pool
    weight_floor: float = Field(0.05, gt=0.0)  # least boundary-weighted sampling weight
    staged_cap: int = Field(0, ge=0)  # most tasks waiting in staged; beyond it the lowest-ranked retire (0: no cap)
    staged_max_age: int = Field(0, ge=0)  # a task staged longer than this many steps retires (0: never)
    # approximate cap of the event log (entries); a 32-group report event is ~11 KB, so 200k
    # entries is ~2 GB at most; the log replays completely only while it is not trimmed
    events_maxlen: int = Field(200_000, ge=1)

    # --- boundary stream (rods.store.stream)
    stream_maxlen: int = Field(10_000, ge=1)  # approximate cap of the boundary stream
    claim_idle_ms: int = Field(60_000, ge=0)  # a pending request idle this long is reclaimed from its consumer
    max_deliveries: int = Field(3, ge=1)  # deliveries before a request goes to the dead-letter stream
    dedup_ttl_s: int = Field(7 * 24 * 3600, ge=1)  # how long a published request id is remembered

    # --- synthesis service (services/, graphs/)
    synth_backend: Literal["procedural", "llm"] = "procedural"  # llm needs synth_model
    synth_model: str | None = None  # any litellm model string, e.g. openai/gpt-4o-mini
    synth_api_base: str | None = None  # OpenAI-compatible server, e.g. http://synth-llm:8000/v1
    synth_temperature: float = Field(1.0, ge=0.0, le=10.0)  # sampling temperature of the synthesizer (paper: 1.0)
    synth_top_p: float = Field(0.7, gt=0.0, le=1.0)  # nucleus sampling of the synthesizer (paper: 0.7)
    # --- synthesizer model client (graphs/synthesis/llm.py); defaults keep a dead or silent
    # server's first line under 30 s: probe 5 s, and the graph's own bounded retries, not litellm's
    synth_timeout_s: float = Field(120.0, gt=0.0)  # one completion, whole reply (a 270M CPU model: 3-10 tok/s)
    synth_num_retries: int = Field(0, ge=0, le=10)  # litellm's own retries of one call (the dispatcher retries requests)
    synth_probe_timeout_s: float = Field(5.0, gt=0.0)  # GET <api_base>/models before the first request
    synth_max_tokens: int = Field(768, ge=1)  # longest reply of one stage (a plan or 6 queries fit in ~300)
    synth_json_schema: bool = True  # ask the server for JSON-schema-constrained replies
    synth_signature_tolerance: float = Field(0.15, ge=0.0)  # largest structural distance of a variant to its seed
    synth_soft_time_limit_s: int = Field(600, ge=1)  # one request's graph run; then the task fails and retries
    # requests sent to workers and not yet finished (or waiting to be retried); set it to the
    # workers' total concurrency (replicas × --concurrency): queued tasks count against the deadline
    dispatch_max_in_flight: int = Field(8, ge=1)
    # a sent request without a result this long after the soft time limit is sent again (its
    # worker died); must exceed the hard limit's margin (services.celery_app, 10 s)
    dispatch_deadline_margin_s: int = Field(30, ge=0)
    # a failed request (model server down, Redis error, lost worker) is sent again after
    # base·2^(n-1) seconds, capped; after `max_deliveries` it is dead-lettered with its last error
    dispatch_retry_base_s: float = Field(30.0, ge=0.0)
    dispatch_retry_cap_s: float = Field(600.0, ge=0.0)

    def detector_rules(self) -> DetectorRules:
        return DetectorRules(
            hard_below=self.hard_below,
            mastered_above=self.mastered_above,
            budget=self.request_budget,
            category_quota=self.category_quota,
            cooldown_steps=self.cooldown_steps,
            n_variants=self.n_variants,
            min_var=self.min_var,
        )

    def pool_rules(self) -> PoolRules:
        return PoolRules(
            beta=self.beta,
            p_max=self.p_max,
            trial_below=self.trial_below,
            retire_mastered_above=self.retire_mastered_above,
            retire_hard_below=self.retire_hard_below,
            min_obs=self.retire_min_obs,
            history_k=self.history_k,
            stale_steps=self.stale_steps,
            seeds_can_retire=self.seeds_can_retire,
            sample_mode=self.sample_mode,
            weight_floor=self.weight_floor,
            staged_cap=self.staged_cap,
            staged_max_age=self.staged_max_age,
            detector=self.detector_rules(),
        )
