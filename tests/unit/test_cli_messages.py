"""The pieces behind `rods`' one-line errors (no services): the top-level handler and --debug,
Redis URL checks, RODS_* variable errors, JSONL readers, the reject-code table, and `synth run`
writing each variant as it is accepted with valid JSON metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cli.errors import RodsGroup
from rods.config import Settings, SettingsError
from rods.store.connection import RedisUrlError, check_url, redact
from rods.tasks import TaskFileError, get_bfcl_task, iter_lines, read_tasks, write_tasks

runner = CliRunner()


def _demo_app() -> typer.Typer:
    demo = typer.Typer(cls=RodsGroup, pretty_exceptions_enable=False)

    @demo.callback()
    def main(debug: bool = typer.Option(False, "--debug")) -> None:
        pass

    @demo.command()
    def boom() -> None:
        raise RuntimeError("the disk\nis on fire")

    @demo.command()
    def settings() -> None:
        Settings()

    return demo


def test_an_escaped_exception_is_one_line_unless_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RODS_DEBUG", raising=False)
    demo = _demo_app()
    res = runner.invoke(demo, ["boom"])
    assert res.exit_code == 1
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert lines == ["error: RuntimeError: the disk is on fire (unexpected; rerun as `rods --debug …` for the traceback)"]
    res = runner.invoke(demo, ["--debug", "boom"])
    assert isinstance(res.exception, RuntimeError)  # --debug lets the traceback through
    monkeypatch.delenv("RODS_DEBUG", raising=False)  # the flag sets it for child processes
    monkeypatch.setenv("RODS_CONNECT_RETRIES", "many")
    res = runner.invoke(demo, ["settings"])
    assert res.exit_code == 2 and "RODS_CONNECT_RETRIES='many': must be a whole number" in res.output


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"RODS_CONNECT_RETRIES": "abc"}, ["RODS_CONNECT_RETRIES='abc'", "whole number"]),
        ({"RODS_SAMPLE_MODE": "foo"}, ["RODS_SAMPLE_MODE='foo'", "'uniform' or 'boundary'"]),
        ({"RODS_BETA": "lots"}, ["RODS_BETA='lots'", "a number"]),
        ({"RODS_SEEDS_CAN_RETIRE": "maybe"}, ["RODS_SEEDS_CAN_RETIRE='maybe'", "true or false"]),
    ],
)
def test_a_bad_variable_names_itself_its_value_and_what_is_allowed(
    env: dict[str, str], words: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(SettingsError) as info:
        Settings()
    message = str(info.value)
    assert "\n" not in message and all(w in message for w in words), message


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("localhost:6379", ["no scheme", "redis://localhost:6379"]),
        ("http://localhost:6379", ["'http://'", "redis://"]),
        ("", ["empty"]),
        ("   ", ["empty"]),
        ("redis://localhost:abc/0", ["port"]),
        ("redis://localhost:70000/0", ["port"]),
        ("redis://localhost:0/0", ["port 0"]),
        ("redis:///0", ["no host"]),
        ("redis://localhost:6379/zero", ["database 'zero'"]),
        ("unix://", ["socket path"]),
    ],
)
def test_bad_redis_urls_say_what_is_wrong(url: str, words: list[str]) -> None:
    with pytest.raises(RedisUrlError) as info:
        check_url(url)
    assert all(w in str(info.value) for w in words), str(info.value)


def test_good_redis_urls_pass_and_passwords_are_never_shown() -> None:
    for url in ("redis://127.0.0.1:6379/0", "redis://h", "rediss://:pw@h:6380/2", "unix:///run/redis.sock"):
        check_url(url)
    assert redact("redis://:s3cret@h:6379/0") == "redis://:***@h:6379/0"
    assert redact("redis://user:s3cret@h/1") == "redis://user:***@h/1"
    with pytest.raises(RedisUrlError) as info:
        check_url("redis://:s3cret@h:port/0")
    assert "s3cret" not in str(info.value)


def test_jsonl_readers_refuse_directories_binary_and_non_utf8(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "bin").write_bytes(b"{}\n\x00\x01")
    (tmp_path / "latin").write_bytes(b'\n\n{"caf\xe9": 1}\n')
    cases = {"d": "is a directory", "bin": "bin:2: a binary file", "latin": "latin:3: not UTF-8", "nope": "no such"}
    for name, words in cases.items():
        with pytest.raises(TaskFileError, match=words):
            list(iter_lines(tmp_path / name))
        with pytest.raises(TaskFileError):
            read_tasks(tmp_path / name)


def test_write_tasks_into_a_directory_leaves_no_tmp(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    with pytest.raises(IsADirectoryError):
        write_tasks(tmp_path / "out", [get_bfcl_task("multi_turn_base_5")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_every_synthesis_code_is_explained() -> None:
    from graphs.synthesis.augment import AUGMENT_REASONS
    from graphs.synthesis.backend import FAILURE_CODES
    from graphs.synthesis.gates import REJECTION_REASONS
    from graphs.synthesis.state import CODE_HELP
    from rods.semantics import SOFT_CODES  # findings: explained and listed, not rejections

    codes = {*FAILURE_CODES, *REJECTION_REASONS, *AUGMENT_REASONS, *SOFT_CODES}
    assert codes <= set(CODE_HELP), codes - set(CODE_HELP)
    assert set(CODE_HELP) <= codes, set(CODE_HELP) - codes  # no explanation of a code that is gone
    assert all(meaning and change for meaning, change in CODE_HELP.values())

    from cli.synth import synth_app

    res = runner.invoke(synth_app, ["codes", "--json"])
    table = json.loads(res.stdout)
    assert res.exit_code == 0 and set(table) == codes
    assert table["signature_far"]["kind"] == "rejection" and "tolerance" in table["signature_far"]["meaning"]


def test_synth_run_writes_each_variant_as_it_is_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import graphs.synthesis.graph as graph
    from cli.synth import synth_app

    out = tmp_path / "v.jsonl"
    seen: list[int] = []
    real = graph.synthesize

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(len(out.read_text().splitlines()) if out.exists() else 0)  # lines on disk before each run
        return real(*args, **kwargs)

    monkeypatch.setattr(graph, "synthesize", spy)
    res = runner.invoke(synth_app, ["run", "--seed", "multi_turn_base_5", "--n", "3", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert seen == [0, 1, 2] and len(read_tasks(out)) == 3
    assert "3/3 variants" in res.output


def test_synth_run_metrics_are_valid_json_and_a_bad_seed_id_is_explained(tmp_path: Path) -> None:
    from cli.synth import synth_app

    seed = get_bfcl_task("multi_turn_base_5").to_bfcl()
    empty = seed | {"id": "multi_turn_base_xempty", "ground_truth": [[] for _ in seed["ground_truth"]]}
    tasks = tmp_path / "t.jsonl"
    tasks.write_text(json.dumps(empty) + "\n" + json.dumps(seed | {"id": "base5"}) + "\n")
    res = runner.invoke(synth_app, ["run", "--seed", "multi_turn_base_xempty", "--tasks", str(tasks),
                                    "--out", str(tmp_path / "o.jsonl")])  # fmt: skip
    assert res.exit_code == 1  # nothing to imitate: no variant
    metrics = json.loads(res.stdout.strip().splitlines()[-1], parse_constant=lambda c: pytest.fail(f"bare {c}"))
    assert metrics["synth/accept_rate"] is None and metrics["synth/fail/no_pattern"] >= 1
    res = runner.invoke(synth_app, ["run", "--seed", "base5", "--tasks", str(tasks), "--out", str(tmp_path / "o.jsonl")])
    assert res.exit_code == 2 and "not of the form multi_turn_<category>_<n>" in res.output
    assert "pipeline_exception" not in res.output


def test_usage_errors_are_one_line_with_where_to_look() -> None:
    """A bad option value, an unknown option or command: exit 2 and one `error:` line (click's
    own report is a usage line and a box)."""
    import subprocess
    import sys

    cases = {
        ("dispatcher", "--max-in-flight", "0"): "--max-in-flight",
        ("eval", "--checkpoint", "x", "--limit", "-1"): "--limit",
        ("nosuch",): "No such command",
        ("buffer", "stats", "--nope"): "No such option",
    }
    for argv, words in cases.items():
        proc = subprocess.run([sys.executable, "-m", "cli", *argv], capture_output=True, text=True)
        lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
        assert proc.returncode == 2, (argv, proc.stderr)
        assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], (argv, lines)
        assert "--help`" in lines[0]
