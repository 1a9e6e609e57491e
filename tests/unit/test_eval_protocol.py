"""`rods eval`: the bfcl protocol's settings, and resolving a run directory to its checkpoint."""

from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from trainer.checkpoint import CheckpointNotFound, resolve_checkpoint
from trainer.config import RolloutConfig
from trainer.evaluate import EvalReport, protocol_settings
from trainer.types import RolloutSettings


def test_bfcl_protocol_follows_bfcl_eval_inference_semantics():
    from bfcl_eval.constants.default_prompts import MAXIMUM_STEP_LIMIT

    model = SimpleNamespace(config=SimpleNamespace(max_position_embeddings=32768))
    s = protocol_settings("bfcl", model, SimpleNamespace())
    assert s["protocol"] == "bfcl" and s["max_steps_per_turn"] == MAXIMUM_STEP_LIMIT + 1
    assert s["max_total_tokens"] == 32768 and s["max_new_tokens"] == 4096  # full context
    assert s["max_calls_per_message"] > 10**6 and s["tool_result_chars"] == 0
    train = RolloutSettings.from_config(RolloutConfig())
    bfcl = RolloutSettings(**{**vars(train), **s})
    assert (train.max_steps_per_turn, train.max_calls_per_message) == (5, 3)  # today's loop
    assert bfcl.max_calls_per_message > train.max_calls_per_message and not bfcl.env_hints
    small = SimpleNamespace(config=SimpleNamespace(max_position_embeddings=None))
    assert protocol_settings("bfcl", small, SimpleNamespace(model_max_length=1024))["max_new_tokens"] == 1024
    assert protocol_settings("train", model, None) == {}
    with pytest.raises(ValueError):
        protocol_settings("other", model, None)  # type: ignore[arg-type]


def test_eval_markdown_names_its_protocol():
    report = EvalReport([{"category": "base", "official_correct": False, "correct": False, "progress": 0.5}])
    assert "Inference protocol: `bfcl`" in report.markdown("x", "bfcl")
    assert "Inference protocol: `train`" in report.markdown("x")


def _model(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    (path / "model.safetensors").write_bytes(b"")
    return path


def test_resolve_checkpoint(tmp_path):
    model = _model(tmp_path / "model")
    assert resolve_checkpoint(model) == model
    sft = tmp_path / "sft"
    _model(sft / "best")
    assert resolve_checkpoint(sft) == sft / "best"
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text('{"policy": {}}')  # the train config is not a model
    for step in (2, 4):
        (_model(run / "checkpoints" / f"step_{step:06d}") / "trainer_state.pt").write_bytes(b"")
    assert resolve_checkpoint(run) == run / "checkpoints" / "step_000004"  # no latest marker
    (run / "checkpoints" / "latest").write_text("step_000002")
    assert resolve_checkpoint(run) == run / "checkpoints" / "step_000002"
    (tmp_path / "run-without").mkdir()
    with pytest.raises(CheckpointNotFound, match="no checkpoint here"):
        resolve_checkpoint(tmp_path / "run-without")
    with pytest.raises(CheckpointNotFound, match="no such directory"):
        resolve_checkpoint(tmp_path / "missing")


def test_cli_eval_on_a_directory_without_checkpoint_says_so_in_one_line(tmp_path):
    from cli.app import app

    (tmp_path / "empty-run").mkdir()
    result = CliRunner().invoke(app, ["eval", "--checkpoint", str(tmp_path / "empty-run")])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert "no checkpoint here" in result.output and "Traceback" not in result.output
    assert result.output.count("error:") == 1 and len(lines) <= 6  # one message, wrapped by rich
    bad = CliRunner().invoke(app, ["eval", "--checkpoint", str(tmp_path), "--protocol", "x"])
    assert bad.exit_code == 2 and "--protocol" in bad.output
