"""Replay buffer on loopback Redis: one training step's round trip, and runs per Redis.

On one 800-task active pool (400 seeds + 400 synthetic), with B = 32 groups per step:

(a) Latency: one step's `report` of B groups (read both record parts, plan with `rods.pool`,
    write with the compare-and-set script `rods/store/lua/apply.lua`), p50 / p99; and the
    step's whole buffer traffic (sample B tasks, report, read the cooldown state, publish up to
    16 boundary requests): target p99 < 5 ms. The floor in the same run: an unpipelined PING.
(b) Capacity: redis-server CPU per training step (INFO cpu over blocks of `--block` steps; the
    server is one thread), hence how many concurrent runs one Redis serves at `--rate` steps/s
    each while it stays at most half busy (so that queueing keeps the tails short).

The figures that retired the server-side report script (script vs this path, in one run) were
measured with this file at commit 3b38ee4, the last with the script; see BENCHMARKS.md.

Starts its own private redis-server (never the one on 6379). Writes benchmarks/results/buffer.md.
Run: `.venv/bin/python benchmarks/bench_buffer.py` (about ten seconds on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import redis

from rods.boundary import DetectorRules, group_stats, select_requests
from rods.config import Settings
from rods.pool import PoolRules
from rods.store.buffer import RedisBuffer
from rods.store.connection import connect
from rods.store.server import RedisServer
from rods.store.stream import BoundaryStream
from rods.tasks import RodsMeta, Task, load_split, synthetic_id

RUN = "bench"
RULES = PoolRules(beta=1.0, p_max=400, stale_steps=10**9)
B, G = 32, 16  # groups per step (tasks), rollouts per group
BUSY = 0.5  # the share of one server core the capacity figure allows
OUT = Path(__file__).parent / "results" / "buffer.md"


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


def step_traffic(
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


def ping_ms(r: redis.Redis, n: int = 2000) -> float:
    """p50 of an unpipelined PING: the floor of any one round trip here."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        r.ping()
        times.append(1e3 * (time.perf_counter() - t0))
    return float(np.percentile(times, 50))


def measure(url: str, blocks: int, block: int) -> dict[str, float]:
    """`blocks` blocks of `block` steps: latencies, and server CPU per step."""
    settings = Settings(redis_url=url, run=RUN)
    r = connect(settings)
    stream = BoundaryStream(r, RUN, settings)
    buf = RedisBuffer(r, RUN, RULES)
    rng = np.random.default_rng(0)
    report_ms: list[float] = []
    step_ms: list[float] = []
    cpu_s = 0.0
    for s in range(1, block + 1):  # warm-up: scripts loaded, connections open, tasks cached
        step_traffic(buf, stream, s, rng)
    s = block + 1
    for _ in range(blocks):
        cpu0 = server_cpu(r)
        for _ in range(block):
            rep, all_ = step_traffic(buf, stream, s, rng)
            s += 1
            report_ms.append(1e3 * rep)
            step_ms.append(1e3 * all_)
        cpu_s += server_cpu(r) - cpu0
    return {
        "report_p50": float(np.percentile(report_ms, 50)),
        "report_p99": float(np.percentile(report_ms, 99)),
        "step_p50": float(np.percentile(step_ms, 50)),
        "step_p99": float(np.percentile(step_ms, 99)),
        "server_us": 1e6 * cpu_s / len(step_ms),  # per step
        "steps": len(step_ms),
        "conflicts": buf.conflicts,
        "ping_p50": ping_ms(r),
        "active": buf.counts().get("active", 0),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--blocks", type=int, default=10)
    ap.add_argument("--block", type=int, default=100, help="training steps per block")
    ap.add_argument("--rate", type=float, default=1.0, help="steps/s of each concurrent run")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    with RedisServer() as server:
        fill(RedisBuffer(connect(Settings(redis_url=server.url, run=RUN)), RUN, RULES))
        g = measure(server.url, args.blocks, args.block)
        version = subprocess.run(
            [server.binary, "--version"], capture_output=True, text=True
        ).stdout.split()[2]
    wall = time.perf_counter() - t0
    load_after = os.getloadavg()[0]
    runs = BUSY / (g["server_us"] * 1e-6 * args.rate)
    print(f"report p50 {g['report_p50']:.2f} ms p99 {g['report_p99']:.2f} ms; "
          f"step p50 {g['step_p50']:.2f} ms p99 {g['step_p99']:.2f} ms; PING p50 {g['ping_p50']:.3f} ms; "
          f"server {g['server_us']:.0f} µs/step → {runs:,.0f} runs at {args.rate:g} step/s; "
          f"conflicts {g['conflicts']:.0f} (load {load_before:.1f} → {load_after:.1f})")  # fmt: skip
    cmd = " ".join([".venv/bin/python benchmarks/bench_buffer.py", *sys.argv[1:]])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        f"""## Replay buffer: one training step's round trip, and runs per Redis

Command: `{cmd}` ({wall:.0f} s) — a private `redis-server` {version} on loopback, started by the
script; {os.cpu_count()} cores, Python {platform.python_version()}, redis-py {redis.__version__}.
Load average (1 min) {load_before:.1f} before and {load_after:.1f} after (a shared machine).
{g["active"]:.0f} active tasks; {g["steps"]:.0f} training steps; B = {B} groups of G = {G} rollouts.

| figure | result | target |
|---|---|---|
| `report` of {B} groups, p50 / p99 | {g["report_p50"]:.2f} / {g["report_p99"]:.2f} ms | |
| a step's buffer traffic (sample + report + publish), p50 / p99 | {g["step_p50"]:.2f} / {g["step_p99"]:.2f} ms | p99 < 5 ms |
| `report` p50 / an unpipelined PING's p50 (the floor), same run | {g["report_p50"] / g["ping_p50"]:.1f}× ({g["ping_p50"]:.3f} ms) | |
| redis-server CPU per step | {g["server_us"]:.0f} µs | |
| concurrent runs at {args.rate:g} step/s one Redis serves at ≤ {100 * BUSY:.0f} % busy | {runs:,.0f} | |

Compare-and-set conflicts re-planned: {g["conflicts"]:.0f} (one client: none expected).
"""
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
