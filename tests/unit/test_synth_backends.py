"""`make_backend`: the one factory of the synthesis worker and `rods synth run` (no model used)."""

from __future__ import annotations

import pytest

import graphs.synthesis.llm as llm
from graphs.synthesis.backends import BackendConfigError, make_backend
from graphs.synthesis.procedural import ProceduralBackend
from rods.config import Settings


def test_llm_backend_takes_every_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    built = []
    monkeypatch.setattr(llm, "LLMBackend", lambda model, **kw: built.append({"model": model, **kw}))
    settings = Settings(
        synth_backend="llm",
        synth_model="hosted_vllm/q",
        synth_api_base="http://s:8000/v1",
        synth_temperature=0.9,
        synth_top_p=0.6,
        synth_timeout_s=7.0,
        synth_num_retries=1,
        synth_probe_timeout_s=2.0,
        synth_max_tokens=99,
        synth_json_schema=False,
    )
    make_backend(settings)
    make_backend(settings, model="openai/m", api_base="http://t:1/v1")  # the CLI's flags win
    client = {"temperature": 0.9, "top_p": 0.6, "timeout_s": 7.0, "num_retries": 1,
              "probe_timeout_s": 2.0, "max_tokens": 99, "json_schema": False}  # fmt: skip
    assert built == [
        {"model": "hosted_vllm/q", "api_base": "http://s:8000/v1", **client},
        {"model": "openai/m", "api_base": "http://t:1/v1", **client},
    ]


def test_procedural_is_the_default_and_bad_choices_are_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RODS_SYNTH_BACKEND", raising=False)
    monkeypatch.delenv("RODS_SYNTH_MODEL", raising=False)
    assert isinstance(make_backend(Settings()), ProceduralBackend)
    assert isinstance(make_backend(Settings(synth_backend="llm"), kind="procedural"), ProceduralBackend)
    with pytest.raises(BackendConfigError, match="needs --model or RODS_SYNTH_MODEL"):
        make_backend(Settings(synth_backend="llm"))
    with pytest.raises(BackendConfigError, match="'procedural' or 'llm', not 'magic'"):
        make_backend(Settings(), kind="magic")
