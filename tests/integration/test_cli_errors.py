"""Every user mistake of issue #15 through the REAL `rods` entry point: one line, the right code.

Table-driven: each case runs `python -m cli …` in a subprocess (all cases at once, in threads,
before the first assertion) against a private Redis (or a port where nothing listens), and
asserts the exit code (2 usage, 1 failure, 0 fine), that no traceback is printed, and the key
words of the message. A hypothesis property test then feeds random bytes and random JSON to
every command that reads a file (in-process, `RODS_DEBUG=1` so that an escaped exception is seen
as such instead of being turned into an error line) and asserts that each ends in a clean exit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cli.app import app
from rods.store.keys import REQUEST_FIELD, RunKeys
from rods.store.server import free_port
from rods.store.stream import BoundaryStream
from rods.tasks import get_bfcl_task, load_split, split_ids

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SEED = "multi_turn_base_5"  # a training seed
RUN = "cli-errors"


@dataclass(frozen=True)
class Case:
    name: str
    args: tuple[str, ...]  # {dir}, {redis}, {dead} are filled in
    code: int
    words: tuple[str, ...]  # all must appear in stdout + stderr (case-insensitive)
    env: dict[str, str] = field(default_factory=dict)
    absent: tuple[str, ...] = ()  # must not appear
    max_s: float | None = None  # wall-clock bound of the whole command


CASES: list[Case] = [
    # --- Redis URLs
    Case("url-no-scheme", ("buffer", "stats", "--redis-url", "localhost:6379"), 2, ("no scheme", "redis://localhost:6379")),
    Case("url-http", ("buffer", "stats", "--redis-url", "http://localhost:6379"), 2, ("'http://'", "redis://")),
    Case("url-empty", ("buffer", "stats", "--redis-url", ""), 2, ("empty", "REDIS_URL")),
    Case("url-port", ("buffer", "stats", "--redis-url", "redis://127.0.0.1:abc/0"), 2, ("port", "not a number")),
    Case("url-db", ("buffer", "stats", "--redis-url", "{redis}/99"), 2, ("no database 99",)),
    Case("url-tls", ("buffer", "stats", "--redis-url", "{tls}"), 2, ("cannot reach redis", "tls", "redis://"),
         env={"RODS_CONNECT_TIMEOUT_S": "1"}, max_s=30),  # fmt: skip
    Case("no-redis", ("buffer", "stats", "--redis-url", "{dead}"), 2, ("cannot reach redis", "redis-server")),
    Case("dispatcher-no-redis", ("dispatcher",), 2, ("cannot reach redis",)),
    # --- RODS_* variables
    Case("env-int", ("buffer", "stats"), 2, ("RODS_CONNECT_RETRIES", "'abc'", "whole number"),
         env={"RODS_CONNECT_RETRIES": "abc"}),  # fmt: skip
    Case("env-literal", ("buffer", "stats"), 2, ("RODS_SAMPLE_MODE", "'foo'", "'uniform'", "'boundary'"),
         env={"RODS_SAMPLE_MODE": "foo"}),  # fmt: skip
    # --- files where JSONL is expected
    *[
        Case(f"{'-'.join(cmd[:2])}-{kind}", (*cmd, f"{{dir}}/{name}", *extra), 2, words)
        for cmd, extra in ((("env", "score"), ()), (("synth", "validate"), ()),
                           (("buffer", "import"), ("--redis-url", "{dead}")))  # fmt: skip
        for kind, name, words in (("dir", "adir", ("is a directory",)), ("binary", "bin.jsonl", ("binary",)),
                                  ("latin1", "latin.jsonl", ("not utf-8", "latin.jsonl:2")))  # fmt: skip
    ],
    # --- output paths
    Case("score-out-missing-dir", ("env", "score", "{dir}/ok.jsonl", "--out", "{dir}/nodir/o.jsonl"), 2, ("does not exist", "mkdir")),
    Case("score-out-dir", ("env", "score", "{dir}/ok.jsonl", "--out", "{dir}/adir"), 2, ("is a directory",)),
    Case("synth-out-dir", ("synth", "run", "--seed", SEED, "--out", "{dir}/adir"), 2, ("is a directory",)),
    Case("synth-out-missing-dir", ("synth", "run", "--seed", SEED, "--out", "{dir}/nodir/v.jsonl"), 2, ("does not exist",)),
    Case("export-to-dir", ("buffer", "export", "{dir}/adir", "--redis-url", "{redis}"), 2, ("is a directory",)),
    Case("train-config-dir", ("train", "--config", "{dir}/adir", "--run-dir", "{dir}/tr"), 2, ("adir is a directory",)),
    Case("train-config-binary", ("train", "--config", "{dir}/latin.jsonl", "--run-dir", "{dir}/tr"), 2,
         ("latin.jsonl", "not UTF-8")),  # fmt: skip
    # --- checkpoints and bounds
    Case("eval-empty-dir", ("eval", "--checkpoint", "{dir}/adir"), 2, ("no checkpoint here", "model directory")),
    Case("eval-limit", ("eval", "--checkpoint", "{dir}/adir", "--limit", "-1"), 2, ("--limit",)),
    Case("max-in-flight-0", ("dispatcher", "--max-in-flight", "0"), 2, ("--max-in-flight",)),
    Case("max-in-flight-neg", ("dispatcher", "--max-in-flight", "-5"), 2, ("--max-in-flight",)),
    Case("replay-width", ("env", "replay", SEED, "--width", "-5"), 2, ("--width",)),
    Case("synth-n-huge", ("synth", "run", "--seed", SEED, "--n", "99999999999999999999", "--out", "{dir}/v.jsonl"), 2, ("--n", "1000")),
    # --- causes said plainly
    Case("seed-bad-id", ("synth", "run", "--seed", "my_task_1", "--tasks", "{dir}/badid.jsonl", "--out", "{dir}/v.jsonl"), 2,
         ("not of the form multi_turn_<category>_<n>", "my_task_1")),  # fmt: skip
    Case("validate-bad-id", ("synth", "validate", "{dir}/badid.jsonl"), 2, ("badid.jsonl", "'my_task_1'", "multi_turn_<category>_<n>")),
    Case("synth-codes", ("synth", "codes"), 0, ("signature_far", "gt_call_error", "pool_duplicate", "means", "change")),
    Case("report-empty", ("report", "{dir}/emptyrun"), 0, ("warning", "metrics.jsonl not found", "events.jsonl not found",
                                                          "synth.json not found", "buffer.jsonl not found")),  # fmt: skip
    Case("replay-markup", ("env", "replay", SEED, "--width", "40"), 0, ("user: ",), absent=("[cyan]", "[/]", "[green]")),
    # --- data that must never get in
    Case("synth-held-out-content", ("synth", "run", "--seed", "multi_turn_base_100000", "--tasks", "{dir}/leak.jsonl",
                                    "--out", "{dir}/v.jsonl"), 2, ("near-duplicate of held-out task",)),  # fmt: skip
    Case("import-held-out-content", ("buffer", "import", "{dir}/leak.jsonl", "--redis-url", "{redis}", "--run", RUN + "-a"), 1,
         ("1 refused", "multi_turn_base_100000", "near-duplicate of held-out task")),  # fmt: skip
    Case("import-gates", ("buffer", "import", "{dir}/badv.jsonl", "--redis-url", "{redis}", "--run", RUN + "-b"), 1,
         ("1 refused", "query_leaks_reasoning")),  # fmt: skip
    Case("import-trust", ("buffer", "import", "{dir}/badv.jsonl", "--redis-url", "{redis}", "--run", RUN + "-c", "--trust"), 0,
         ("imported 1", "--trust", "gates were skipped")),  # fmt: skip
    Case("stats-dead-letters", ("buffer", "stats", "--redis-url", "{redis}", "--run", RUN + "-d"), 0,
         ("dead-lettered requests: 1", "malformed")),  # fmt: skip
]


@dataclass
class Outcome:
    code: int
    out: str
    seconds: float


def _files(d: Path) -> None:
    (d / "adir").mkdir()
    (d / "emptyrun").mkdir()
    (d / "bin.jsonl").write_bytes(b"\x00\x01\x02\xff" * 50)
    (d / "latin.jsonl").write_bytes(b'\n{"caf\xe9": 1}\n')  # Latin-1 on line 2
    (d / "ok.jsonl").write_text(json.dumps({"task_id": SEED, "calls": []}) + "\n")
    leak = get_bfcl_task(sorted(split_ids("eval"))[0]).to_bfcl() | {"id": "multi_turn_base_100000"}
    (d / "leak.jsonl").write_text(json.dumps(leak) + "\n")
    (d / "badid.jsonl").write_text(json.dumps(get_bfcl_task(SEED).to_bfcl() | {"id": "my_task_1"}) + "\n")
    seed = get_bfcl_task(SEED).to_bfcl()
    bad = seed | {
        "id": "multi_turn_base_xcli0bad",
        "question": [[{"role": "user", "content": "Step 1: do it"}]] + seed["question"][1:],
        "rods": {"origin": "synthetic", "parent_id": SEED, "root_id": SEED, "generation": 1},
    }
    (d / "badv.jsonl").write_text(json.dumps(bad) + "\n")


def _run(case: Case, fill: dict[str, str]) -> Outcome:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RODS_") and k != "REDIS_URL"}
    env |= {"PYTHONPATH": str(ROOT), "REDIS_URL": fill["dead"], "COLUMNS": "200"} | case.env
    args = [a.format(**fill) for a in case.args]
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True, env=env,
                       cwd=fill["dir"], timeout=120)  # fmt: skip
    return Outcome(p.returncode, p.stdout + p.stderr, time.monotonic() - t0)


@pytest.fixture(scope="module", autouse=True)
def _clean_runs(redis_url: str) -> Iterator[None]:
    """Every run this module writes (cli-errors-*) is deleted afterwards."""
    yield
    r = redis.Redis.from_url(redis_url)
    try:
        for key in r.scan_iter(match=f"rods:{RUN}-*"):
            r.delete(key)
    finally:
        r.close()


@pytest.fixture(scope="module")
def outcomes(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    d = tmp_path_factory.mktemp("cli-errors")
    _files(d)
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    stream = BoundaryStream(r, RUN + "-d")
    stream.ensure_group()
    r.xadd(RunKeys(RUN + "-d").boundary, {REQUEST_FIELD: "{not a request"})
    stream.read("cli-test")  # the malformed entry goes to the dead-letter stream
    fill = {"dir": str(d), "redis": redis_url.rsplit("/", 1)[0], "dead": f"redis://127.0.0.1:{free_port()}/0",
            "tls": redis_url.replace("redis://", "rediss://")}  # fmt: skip
    r.close()
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {c.name: pool.submit(_run, c, fill) for c in CASES}
        return {name: f.result() for name, f in futures.items()} | {"_dir": Outcome(0, str(d), 0.0)}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_mistake_gets_one_clear_line(case: Case, outcomes: dict[str, Outcome]) -> None:
    got = outcomes[case.name]
    assert got.code == case.code, got.out
    assert "Traceback" not in got.out and 'File "' not in got.out, got.out
    for word in case.words:
        assert word.lower() in got.out.lower(), (word, got.out)
    for word in case.absent:
        assert word not in got.out, (word, got.out)
    if case.max_s is not None:
        assert got.seconds < case.max_s, got.seconds
    if case.code == 2 and "Invalid value" not in got.out:  # ours, not click's usage box: one line
        assert len([line for line in got.out.splitlines() if line.strip()]) == 1, got.out


def test_no_stray_tmp_files(outcomes: dict[str, Outcome]) -> None:
    d = Path(outcomes["_dir"].out)
    assert not list(d.rglob("*.tmp"))
    assert not (d / "nodir").exists() and list((d / "adir").iterdir()) == []


def test_cannot_reach_redis_within_5_s_by_default() -> None:
    from rods.config import Settings
    from rods.store.connection import RedisUnavailable, connect

    t0 = time.monotonic()
    with pytest.raises(RedisUnavailable, match="cannot reach Redis"):
        connect(Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    assert time.monotonic() - t0 < 5.0


# ---------------------------------------------------------------- random input never crashes

runner = CliRunner()
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def task_like(draw: Callable) -> dict:  # type: ignore[type-arg]
    """A real training task with one field replaced or dropped: reaches deep into the readers."""
    task = draw(st.sampled_from(load_split("train")[:8])).to_bfcl()
    key = draw(st.sampled_from([*task, "rods", "task_id", "calls"]))
    if draw(st.booleans()):
        task.pop(key, None)
    else:
        task[key] = draw(json_values)
    if draw(st.booleans()):
        task["id"] = draw(st.sampled_from(["multi_turn_base_x1", "x", "multi_turn_nope_1", "multi_turn_miss_func_x2"]))
    return task


lines = st.lists(json_values | task_like(), min_size=1, max_size=3).map(
    lambda xs: "\n".join(json.dumps(x) for x in xs).encode()
)
contents = st.binary(max_size=200) | lines


def _commands(path: Path, redis_url: str) -> list[list[str]]:
    return [
        ["env", "score", str(path)],
        ["synth", "validate", str(path)],
        ["buffer", "import", str(path), "--redis-url", redis_url, "--run", RUN + "-fuzz"],
        ["synth", "run", "--seed", "multi_turn_base_x1", "--tasks", str(path), "--out", str(path) + ".out"],
    ]


@settings(max_examples=int(os.environ.get("CLI_FUZZ_EXAMPLES", "25")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=contents)
def test_random_files_end_cleanly(content: bytes, redis_url: str, tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(content)
    for args in _commands(path, redis_url):
        res = runner.invoke(app, args, env={"RODS_DEBUG": "1", "REDIS_URL": redis_url})
        assert res.exception is None or isinstance(res.exception, SystemExit), (args, content, res.output)
        assert res.exit_code in (0, 1, 2), (args, res.output)
        assert "Traceback" not in res.output


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.dictionaries(st.sampled_from(["metrics.jsonl", "events.jsonl", "synth.json", "buffer.jsonl", "config.json"]),
                             contents, max_size=5))  # fmt: skip
def test_random_run_dirs_report_cleanly(files: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory) -> None:
    run_dir = tmp_path_factory.mktemp("run")
    for name, content in files.items():
        (run_dir / name).write_bytes(content)
    res = runner.invoke(app, ["report", str(run_dir)], env={"RODS_DEBUG": "1"})
    assert res.exception is None or isinstance(res.exception, SystemExit), (files, res.output)
    assert res.exit_code == 0 and (run_dir / "report.html").is_file()
    missing = {"metrics.jsonl", "events.jsonl", "synth.json", "buffer.jsonl"} - set(files)
    assert all(f"{name} not found" in res.output for name in missing)
