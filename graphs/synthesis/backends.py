"""Which backend a process synthesizes with: the one factory the worker and `rods synth run` use.

The choice comes from the process settings (`RODS_SYNTH_BACKEND`, `RODS_SYNTH_MODEL`,
`RODS_SYNTH_API_BASE`, `RODS_SYNTH_TEMPERATURE`, `RODS_SYNTH_TOP_P`, and the client's
`RODS_SYNTH_TIMEOUT_S`, `…_NUM_RETRIES`, `…_PROBE_TIMEOUT_S`, `…_MAX_TOKENS`, `…_JSON_SCHEMA`);
the CLI's flags override the first three. The backends are imported only when chosen (litellm is slow to import).
"""

from __future__ import annotations

from graphs.synthesis.backend import Backend
from rods.config import Settings

KINDS: tuple[str, ...] = ("procedural", "llm")


class BackendConfigError(ValueError):
    """A backend choice that cannot be built; the message is one line for the user."""


def make_backend(
    settings: Settings,
    *,
    kind: str | None = None,
    model: str | None = None,
    api_base: str | None = None,
) -> Backend:
    """The configured backend: `procedural` (no model) or `llm` (any litellm model string).

    `kind`, `model` and `api_base`, when given, replace the settings' values; the sampling
    parameters (temperature, top-p) are always the settings'.
    """
    kind = kind or settings.synth_backend
    if kind not in KINDS:
        raise BackendConfigError(f"the synthesis backend must be 'procedural' or 'llm', not {kind!r}")
    if kind == "procedural":
        try:
            from graphs.synthesis.procedural import ProceduralBackend
        except ImportError as e:
            raise BackendConfigError(
                f"the procedural backend is not available in this install ({e})"
            ) from None
        return ProceduralBackend()
    model = model or settings.synth_model
    if not model:
        raise BackendConfigError(
            "the llm backend needs --model or RODS_SYNTH_MODEL (a litellm model string, e.g. "
            "openai/gpt-4o-mini, or hosted_vllm/Qwen/Qwen3-32B with RODS_SYNTH_API_BASE)"
        )
    from graphs.synthesis.llm import LLMBackend

    return LLMBackend(
        model,
        api_base=api_base or settings.synth_api_base,
        temperature=settings.synth_temperature,
        top_p=settings.synth_top_p,
        timeout_s=settings.synth_timeout_s,
        num_retries=settings.synth_num_retries,
        probe_timeout_s=settings.synth_probe_timeout_s,
        max_tokens=settings.synth_max_tokens,
        json_schema=settings.synth_json_schema,
    )
