"""`rods demo`: the whole closed loop on one machine, embedded, on CPU. A process supervisor.

    redis-server (private port, data under <run_dir>/redis)
    rods sft            the tiny policy's warm start, cached under <run_dir>/sft
    rods worker ×2      Celery synthesis worker processes (procedural backend, or --model, or
                        --synth llm: a local llama.cpp server for the run, threads pool)
    rods dispatcher     boundary stream → Celery
    rods train          GRPO in rods mode (configs/demo.toml), its own process
    → export the buffer, the event log and synthesis metrics, then `report.html`

The run directory is the demo's own: `rods demo` holds its lock (`rods.rundir.RunLock`) while it
runs, starts only in a new or empty directory or one an earlier `rods demo` made (marked with
`.made-by-rods`; `--reuse-dir` accepts another directory), and clears only the `rods/` and
`redis/` subdirectories that carry its own marker: it never deletes what it did not create.

Every child runs in its own process group and is stopped (SIGTERM, then SIGKILL) on success, on
error and on Ctrl-C; the Redis server last. Children's output goes to <run_dir>/logs/. One
progress display follows the trainer's metrics.jsonl and the run's Redis counters.
This module imports `rods` and, for the final report, `report`: the other parts run as processes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from rods.store.connection import connect
from rods.store.keys import RunKeys
from rods.store.server import RedisServer

RUN = "demo"
console = Console()


class Supervisor:
    """Child processes in their own process groups, stopped in reverse start order."""

    def __init__(self, log_dir: Path, env: dict[str, str]):
        self.log_dir = log_dir
        self.env = env
        self.children: list[tuple[str, subprocess.Popen[bytes], Any]] = []

    def start(self, name: str, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            list(argv), env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.children.append((name, proc, log))
        return proc

    def check(self) -> None:
        for name, proc, _ in self.children:
            if proc.poll() is not None and name != "train":
                raise RuntimeError(
                    f"{name} exited with code {proc.returncode}; see {self.log_dir / (name + '.log')}"
                )

    def stop_all(self, timeout_s: float = 15.0) -> None:
        for _name, proc, _ in reversed(self.children):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout_s
        for _name, proc, log in reversed(self.children):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
            log.close()
        self.children.clear()


def _rods(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli", *args]


def _last_metrics(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    lines = path.read_text().splitlines()
    return json.loads(lines[-1]) if lines else {}


def _display(step_total: int, m: dict[str, Any], synth: dict[str, float], elapsed: float) -> Table:
    def f(key: str, spec: str = ".3f") -> str:
        v = m.get(key)
        return "—" if v is None else format(v, spec)

    t = Table(title=f"rods demo — {elapsed:.0f}s", show_header=False, expand=False)
    t.add_column(style="bold")
    t.add_column()
    t.add_row("step", f"{m.get('step', 0)}/{step_total}")
    t.add_row("reward (mean R_P)", f("reward/mean"))
    t.add_row("groups with zero variance", f("reward/frac_zero_var", ".0%"))
    t.add_row("hard / boundary / mastered", " / ".join(
        f(f"boundary/frac_{r}", ".0%") for r in ("hard", "boundary", "mastered")))
    t.add_row("requests published (step)", f("boundary/requests", ".0f"))
    t.add_row("buffer active / staged / retired", " / ".join(
        f(f"buffer/{s}", ".0f") for s in ("active", "staged", "retired")))
    t.add_row("promoted (last epoch end)", f("buffer/promoted", ".0f"))
    done = synth.get("synth/results", 0.0)
    staged = synth.get("synth/staged", 0.0)
    rate = 60.0 * staged / elapsed if elapsed > 0 else 0.0
    t.add_row("synthesis: requests done / tasks staged", f"{done:.0f} / {staged:.0f}  ({rate:.1f} tasks/min)")
    t.add_row("step time", f("time/step", ".1f") + " s")
    return t


def export_run(r: Any, run: str, out_dir: Path) -> None:
    """Buffer, event log and synthesis metrics next to the trainer's metrics (report inputs),
    each file written whole or not at all."""
    from rods.fileio import AtomicWriter, atomic_write_text
    from rods.store.buffer import RedisBuffer

    buffer = RedisBuffer(r, run)
    with AtomicWriter(out_dir / "buffer.jsonl") as f:
        for task in buffer.export_tasks():
            f.write(json.dumps(task.to_bfcl()) + "\n")
    with AtomicWriter(out_dir / "events.jsonl") as f:
        for event in buffer.events():
            f.write(event.model_dump_json() + "\n")
    keys = RunKeys(run)
    synth = {k: float(v) for k, v in r.hgetall(keys.synth_metrics).items()}
    latency = [float(x) for x in r.lrange(keys.synth_latency, 0, -1)]
    atomic_write_text(out_dir / "synth.json", json.dumps({"metrics": synth, "latency_s": latency}, indent=1))


DEMO = "rods demo"  # the command name in the marker files of what the demo made
MADE_SUBDIRS = ("rods", "redis")  # cleared at each demo start, when (and only when) the demo made them


class DemoDirRefused(ValueError):
    """A --run-dir the demo must not use as it is; the message says why and what to do."""


def check_run_dir(run_dir: Path, reuse: bool) -> None:
    """Check, writing nothing, that `run_dir` may hold a demo. Raises DemoDirRefused."""
    from rods.rundir import LOCK_FILE, MADE_MARKER, made_here

    if run_dir.exists() and not run_dir.is_dir():
        raise DemoDirRefused(f"--run-dir {run_dir} is a file; give a directory (a new one is created)")
    ours = made_here(run_dir, DEMO)
    foreign = sorted(p.name for p in run_dir.iterdir() if p.name not in (LOCK_FILE, MADE_MARKER)) if run_dir.is_dir() else []
    if foreign and not ours and not reuse:
        shown = ", ".join(foreign[:4]) + (", …" if len(foreign) > 4 else "")
        raise DemoDirRefused(
            f"--run-dir {run_dir} holds files that rods demo did not make ({shown}); give a new or "
            "empty directory (default runs/demo), or pass --reuse-dir to add the demo's files beside them"
        )
    for name in MADE_SUBDIRS:
        sub = run_dir / name
        if sub.exists() and not made_here(sub, DEMO):
            raise DemoDirRefused(
                f"{sub} exists and was not made by rods demo, which would replace it; move it away "
                "or give another --run-dir"
            )


def prepare_run_dir(run_dir: Path) -> None:
    """Mark `run_dir` as the demo's and clear the subdirectories an earlier demo made there
    (only after `check_run_dir` and under the run's lock)."""
    from rods.rundir import claim_made_dir, made_here

    if not made_here(run_dir, DEMO):
        claim_made_dir(run_dir, DEMO)
    for name in MADE_SUBDIRS:  # each demo trains anew; the warm start (sft/) is kept
        shutil.rmtree(run_dir / name, ignore_errors=True)
        claim_made_dir(run_dir / name, DEMO)


def run_demo(
    run_dir: Path,
    *,
    steps: int | None = None,
    model: str | None = None,
    config: Path | None = None,
    workers: int = 2,
    reuse_dir: bool = False,
    synth: str = "procedural",
) -> Path:
    """Run the embedded loop; returns the path of report.html. Raises DemoDirRefused or
    `rods.rundir.RunDirBusy` before anything is written when the run directory is not the demo's.
    `synth="llm"` without `model` serves the packaged Gemma 3 270M with llama.cpp for the run
    (started here, stopped here)."""
    from rods.rundir import RunLock

    config = config or Path(__file__).resolve().parent.parent / "configs" / "demo.toml"
    if not config.exists():
        raise FileNotFoundError(f"{config}: demo config not found")
    from trainer.config import load_config

    load_config(config)  # a ConfigError (one line, exit 2) before Redis, the warm start or a worker starts
    run_dir = run_dir.resolve()
    check_run_dir(run_dir, reuse_dir)  # before the lock file is made in a foreign directory
    with RunLock(run_dir, DEMO):
        check_run_dir(run_dir, reuse_dir)  # again, now that no other demo can change it
        prepare_run_dir(run_dir)
        return _run_demo_locked(run_dir, steps, model, config, workers, synth)


def _run_demo_locked(run_dir: Path, steps: int | None, model: str | None, config: Path, workers: int,
                     backend: str) -> Path:
    logs = run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    train_dir = run_dir / "rods"
    redis_dir = run_dir / "redis"
    t0 = time.monotonic()

    server = RedisServer(appendonly=True, directory=str(redis_dir)).start()
    env = {**os.environ, "REDIS_URL": server.url, "RODS_RUN": RUN, "HF_HUB_OFFLINE": "1",
           "LITELLM_LOCAL_MODEL_COST_MAP": "True", "TOKENIZERS_PARALLELISM": "false",
           "RODS_CLAIM_IDLE_MS": "20000"}  # fmt: skip
    if model:
        env.update({"RODS_SYNTH_BACKEND": "llm", "RODS_SYNTH_MODEL": model})
    llm_server = _start_llm_server(logs, env) if backend == "llm" and not model else None
    pool = ["--pool", "threads", "--concurrency", "4"] if backend == "llm" or model else ["--concurrency", "1"]
    sup = Supervisor(logs, env)
    try:
        best = run_dir / "sft" / "best"
        if not (best / "config.json").exists():
            console.print("[bold]warm start[/] (first run only; cached in", best, ")")
            subprocess.run(_rods("sft", "--run-dir", str(run_dir), "--no-measure"), env=env, check=True)
        else:
            console.print(f"warm start: cached at {best}")
        for k in range(workers):
            sup.start(f"worker{k}", _rods("worker", *pool, "--loglevel", "warning"))
        sup.start("dispatcher", _rods("dispatcher", "--run", RUN))
        train_args = ["train", "--config", str(config), "--mode", "rods", "--run-dir", str(train_dir),
                      "--init-from", str(best)]
        if steps is not None:
            train_args += ["--steps", str(steps)]
        total = steps or _config_steps(config)
        trainer = sup.start("train", _rods(*train_args))
        r = connect(_settings(server.url))
        keys = RunKeys(RUN)
        with Live(console=console, refresh_per_second=2) as live:
            while trainer.poll() is None:
                sup.check()
                synth = {k: float(v) for k, v in r.hgetall(keys.synth_metrics).items()}
                live.update(_display(total, _last_metrics(train_dir / "metrics.jsonl"), synth, time.monotonic() - t0))
                time.sleep(0.5)
        if trainer.returncode != 0:
            raise RuntimeError(f"the trainer exited with code {trainer.returncode}; see {logs / 'train.log'}")
        export_run(r, RUN, train_dir)
        r.close()
    finally:
        sup.stop_all()
        server.stop()
        if llm_server is not None:
            llm_server.stop()
    from cli.report import write_report

    report = write_report(train_dir)
    console.print(f"[green]demo finished in {time.monotonic() - t0:.0f}s[/]: report at {report}")
    return report


def _start_llm_server(logs: Path, env: dict[str, str]) -> Any:
    """llama.cpp serving the packaged Gemma GGUF on a free loopback port; sets the workers' env."""
    from rods.models import ensure_gguf
    from rods.store.server import free_port
    from services.llm_server import LLMServer

    log = (logs / "llm_server.log").open("w")
    console.print("[bold]synthesizer[/]: llama.cpp serving gemma-3-270m (rods llm serve)")
    server = LLMServer("llamacpp", ensure_gguf("gemma-3-270m"), "gemma-3-270m", port=free_port(),
                       parallel=4, ctx_per_slot=4096, log=log).start()  # fmt: skip
    env.update({"RODS_SYNTH_BACKEND": "llm", "RODS_SYNTH_MODEL": server.litellm_model,
                "RODS_SYNTH_API_BASE": server.api_base})  # fmt: skip
    return server


def _settings(url: str) -> Any:
    from rods.config import Settings

    return Settings(redis_url=url, run=RUN)


def _config_steps(config: Path) -> int:
    import tomllib

    return int(tomllib.loads(config.read_text()).get("loop", {}).get("steps", 100))
