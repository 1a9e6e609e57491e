"""Replay buffer on loopback Redis: what a user feels of the server-side report script.

Two figures decide whether the `report` Lua script (rods/store/lua/report.lua) earns its place
over the generic path (read both record parts, plan with `rods.pool` in Python, write with the
compare-and-set `apply` script), both measured in the same run, on one 800-task active pool
(400 seeds + 400 synthetic), in alternating blocks of `--block` training steps per path:

(a) Latency: one training step's `report` of B = 32 groups, p50 / p99 per path and their ratio;
    also the step's whole buffer traffic (sample 32 tasks, report, read the cooldown state and
    publish up to 16 boundary requests), the figure with the 5 ms p99 target.
(b) Capacity: redis-server CPU per training step (INFO cpu over each block; the server is one
    thread), hence how many concurrent runs one Redis serves at `--rate` steps/s each while it
    stays at most half busy (so that queueing keeps the tails short).

Starts its own private redis-server (never the one on 6379). Writes benchmarks/results/buffer.md.
Run: `.venv/bin/python benchmarks/bench_buffer.py` (about half a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import redis

from rods.boundary import DetectorRules, group_stats, select_requests
from rods.config import Settings
from rods.pool import PoolRules, Scored
from rods.store.buffer import RedisBuffer
from rods.store.changes import ReportResult
from rods.store.connection import connect
from rods.store.contract import ReplayBuffer
from rods.store.server import RedisServer
from rods.store.stream import BoundaryStream
from rods.tasks import RodsMeta, Task, load_split, synthetic_id

RUN = "bench"
RULES = PoolRules(beta=1.0, p_max=400, stale_steps=10**9)
B, G = 32, 16  # groups per step (tasks), rollouts per group
BUSY = 0.5  # the share of one server core the capacity figure allows
OUT = Path(__file__).parent / "results" / "buffer.md"


class GenericPath(RedisBuffer):
    """The same store, reporting through the generic path of `ReplayBuffer` (no report script)."""

    def _report(self, reports: Sequence[Scored], step: int) -> ReportResult:
        return ReplayBuffer._report(self, reports, step)


def variants(seeds: list[Task], n: int) -> list[Task]:
    out = []
    for k in range(n):
        seed = seeds[k % len(seeds)]
        body = seed.to_bfcl() | {
            "question": [[{"role": "user", "content": f"v{k}"}]] * len(seed.question)
        }
        meta = RodsMeta(origin="synthetic", parent_id=seed.id, root_id=seed.id, generation=1)
        out.append(
            Task.model_validate(body | {"id": synthetic_id(seed.category, body), "rods": meta})
        )
    return out


def fill(buf: RedisBuffer) -> None:
    seeds = load_split("train")
    buf.load_seeds(seeds)
    buf.add_staged(variants(seeds, 400), step=0, priority=0.5)
    buf.promote(0)  # β = 1: all 400 synthetic tasks become active (P_max 400)


def step(
    buf: RedisBuffer, stream: BoundaryStream, step: int, rng: np.random.Generator
) -> tuple[float, float]:
    """One training step's buffer traffic: (seconds in `report`, seconds in all buffer calls).
    The rewards are drawn between the timed calls (the trainer's rollouts are not timed)."""
    t0 = time.perf_counter()
    tasks = buf.sample(B)
    sampling = time.perf_counter() - t0
    rewards_B_G = rng.choice(
        [0.0, 0.25, 0.5, 0.75, 1.0], p=[0.1, 0.2, 0.4, 0.2, 0.1], size=(len(tasks), G)
    )
    stats_B = [
        group_stats(t.id, rewards_G.tolist())
        for t, rewards_G in zip(tasks, rewards_B_G, strict=True)
    ]
    t0 = time.perf_counter()
    buf.report(stats_B, step)
    t1 = time.perf_counter()
    last = stream.last_requested([s.task_id for s in stats_B])
    stream.publish(select_requests(stats_B, step, last, DetectorRules()))
    return t1 - t0, sampling + time.perf_counter() - t0


def server_cpu(r: redis.Redis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def measure(url: str, blocks: int, block: int) -> dict[str, dict[str, float]]:
    """Alternating blocks of `block` steps per path; latencies and server CPU per path."""
    settings = Settings(redis_url=url, run=RUN)
    r = connect(settings)
    stream = BoundaryStream(r, RUN, settings)
    paths: dict[str, RedisBuffer] = {
        "script": RedisBuffer(r, RUN, RULES),
        "generic": GenericPath(r, RUN, RULES),
    }
    rng = np.random.default_rng(0)
    report_ms: dict[str, list[float]] = {p: [] for p in paths}
    step_ms: dict[str, list[float]] = {p: [] for p in paths}
    cpu_s = dict.fromkeys(paths, 0.0)
    s = 1
    for buf in paths.values():  # warm-up: scripts loaded, connections open, tasks cached
        for _ in range(2 * block):
            step(buf, stream, s, rng)
            s += 1
    for k in range(2 * blocks):
        name = ("script", "generic")[k % 2 if (k // 2) % 2 == 0 else 1 - k % 2]  # ABBA order
        buf = paths[name]
        cpu0 = server_cpu(r)
        for _ in range(block):
            rep, all_ = step(buf, stream, s, rng)
            s += 1
            report_ms[name].append(1e3 * rep)
            step_ms[name].append(1e3 * all_)
        cpu_s[name] += server_cpu(r) - cpu0
    out = {}
    for name, buf in paths.items():
        n = len(report_ms[name])
        out[name] = {
            "report_p50": float(np.percentile(report_ms[name], 50)),
            "report_p99": float(np.percentile(report_ms[name], 99)),
            "step_p50": float(np.percentile(step_ms[name], 50)),
            "step_p99": float(np.percentile(step_ms[name], 99)),
            "server_us": 1e6 * cpu_s[name] / n,  # per step
            "steps": n,
            "conflicts": buf.conflicts,
            "fallbacks": getattr(buf, "report_fallbacks", 0),
        }
    out["pool"] = {"active": paths["script"].counts().get("active", 0)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--blocks", type=int, default=8, help="blocks per path")
    ap.add_argument("--block", type=int, default=100, help="training steps per block")
    ap.add_argument("--rate", type=float, default=1.0, help="steps/s of each concurrent run")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    with RedisServer() as server:
        fill(RedisBuffer(connect(Settings(redis_url=server.url, run=RUN)), RUN, RULES))
        got = measure(server.url, args.blocks, args.block)
        version = subprocess.run(
            [server.binary, "--version"], capture_output=True, text=True
        ).stdout.split()[2]
    wall = time.perf_counter() - t0
    load_after = os.getloadavg()[0]
    sc, ge = got["script"], got["generic"]
    runs = {p: BUSY / (got[p]["server_us"] * 1e-6 * args.rate) for p in ("script", "generic")}
    for p in ("script", "generic"):
        g = got[p]
        print(f"{p:8s} report p50 {g['report_p50']:.2f} ms p99 {g['report_p99']:.2f} ms; "
              f"step p50 {g['step_p50']:.2f} ms p99 {g['step_p99']:.2f} ms; "
              f"server {g['server_us']:.0f} µs/step → {runs[p]:,.0f} runs at {args.rate:g} step/s; "
              f"conflicts {g['conflicts']}, fallbacks {g['fallbacks']}")  # fmt: skip
    ratio = {k: ge[k] / sc[k] for k in ("report_p50", "report_p99", "step_p99", "server_us")}
    print("generic / script: " + ", ".join(f"{k} {v:.2f}×" for k, v in ratio.items()))
    cmd = " ".join([".venv/bin/python benchmarks/bench_buffer.py", *sys.argv[1:]])
    n = sc["steps"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        f"""## Replay buffer: the report script vs the generic path

Command: `{cmd}` ({wall:.0f} s) — a private `redis-server` {version} on loopback, started by the
script; {os.cpu_count()} cores, Python {platform.python_version()}, redis-py {redis.__version__}.
Load average (1 min) {load_before:.1f} before and {load_after:.1f} after (a shared machine).
{got["pool"]["active"]} active tasks; {n} training steps per path, in alternating blocks of
{args.block} (ABBA order); B = {B} groups of G = {G} rollouts per step.

| figure | script | generic | generic / script |
|---|---|---|---|
| `report` of {B} groups, p50 | {sc["report_p50"]:.2f} ms | {ge["report_p50"]:.2f} ms | {ratio["report_p50"]:.2f}× |
| `report` of {B} groups, p99 | {sc["report_p99"]:.2f} ms | {ge["report_p99"]:.2f} ms | {ratio["report_p99"]:.2f}× |
| a step's buffer traffic (sample + report + publish), p50 | {sc["step_p50"]:.2f} ms | {ge["step_p50"]:.2f} ms | |
| same, p99 (target < 5 ms) | {sc["step_p99"]:.2f} ms | {ge["step_p99"]:.2f} ms | {ratio["step_p99"]:.2f}× |
| redis-server CPU per step | {sc["server_us"]:.0f} µs | {ge["server_us"]:.0f} µs | {ratio["server_us"]:.2f}× |
| concurrent runs at {args.rate:g} step/s one Redis serves at ≤ {100 * BUSY:.0f} % busy | {runs["script"]:,.0f} | {runs["generic"]:,.0f} | |

Conflicts re-planned: script {sc["conflicts"]}, generic {ge["conflicts"]}; reports the script
handed back to the generic path: {sc["fallbacks"]}.
"""
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
