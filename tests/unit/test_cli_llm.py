"""`rods llm serve|check` mistakes are one line (no server started); the vLLM command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from services.llm_server import LLMServer, ServerError


def _run(*argv: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(argv))


def test_serve_mistakes_are_one_line(tmp_path: Path) -> None:
    res = _run("llm", "serve", "--engine", "tgi")
    assert res.exit_code == 2 and "--engine must be one of llamacpp, vllm, not 'tgi'" in res.output
    res = _run("llm", "serve", "--model", str(tmp_path / "nope.gguf"))
    assert res.exit_code == 2 and "neither a packaged model" in res.output and "Traceback" not in res.output
    res = _run("llm", "serve", "--engine", "vllm", "--model", str(tmp_path))
    assert res.exit_code == 2 and "nor a Hugging Face directory" in res.output


def test_check_names_a_closed_port() -> None:
    from rods.store.server import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    res = _run("llm", "check", "--api-base", url, "--model", "openai/gemma-3-270m")
    assert res.exit_code == 2 and f"connection refused at {url}" in res.output


def test_the_vllm_server_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RODS_VLLM_PYTHON", str(tmp_path / "missing" / "python"))
    server = LLMServer("vllm", tmp_path, "g", port=9123, parallel=3)
    with pytest.raises(ServerError, match="no vLLM environment at .*set RODS_VLLM_PYTHON"):
        server.command()
    py = tmp_path / "python"
    py.write_text("")
    monkeypatch.setenv("RODS_VLLM_PYTHON", str(py))
    argv = server.command()
    assert argv[:3] == [str(py), "-m", "vllm.entrypoints.openai.api_server"]
    assert argv[argv.index("--served-model-name") + 1] == "g" and argv[argv.index("--port") + 1] == "9123"
    assert argv[argv.index("--max-num-seqs") + 1] == "3"
    assert server.litellm_model == "openai/g" and server.api_base == "http://127.0.0.1:9123/v1"
