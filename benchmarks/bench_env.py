"""Environment benchmarks: scoring throughput vs bfcl-eval, step latency, fresh-world cost.

    .venv/bin/python benchmarks/bench_env.py            # full run (~15 s on 2 cores)
    .venv/bin/python benchmarks/bench_env.py --quick    # smaller run (~7 s), a smoke check

(a) Scoring throughput: trajectories per second of our scorer (`score_calls` with a warm
    `GroundTruthCache`, what `rods env score` does per line) and of bfcl-eval's
    `multi_turn_checker`, on the same perturbed trajectories (`rods.env.perturb`), in one run,
    interleaved trajectory by trajectory.
    Only the scoring calls are timed: decoding to call strings and removing the checker's
    per-trajectory globals happen outside the clock. The cold figure adds building the cache.
(b) One environment step, `Episode.step` on an assistant message with 1–2
    `<tool_call>{json}</tool_call>` blocks (parse + execute + tool messages), replaying the
    ground truth of every task; the turn-ending text step (which runs the turn check) apart.
(c) A fresh world: `WorldTemplate.fresh()` (unpickle) vs `World.load(task)` (deep copy of the
    config + `_load_scenario`), on base and long_context tasks.

Prints a Markdown table and writes it, with the command and the machine, to
benchmarks/results/env.md (or --out).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rods.env.episode import Episode
from rods.env.official import decoded_turns
from rods.env.perturb import Perturbation, perturbations
from rods.env.reward import GroundTruthCache, score_calls
from rods.env.world import World, WorldTemplate
from rods.tasks import Task, ToolCall, load_bfcl_tasks

SEED = 20260325
RESULTS = Path(__file__).parent / "results" / "env.md"


@dataclass(frozen=True)
class Config:
    per_task: int  # perturbed trajectories per task for (a)
    step_rounds: int  # passes over all tasks' ground truth for (b)
    world_repeats: int  # fresh worlds per task for (c)
    tasks_per_category: int  # tasks of each category used by (c)


FULL = Config(per_task=5, step_rounds=3, world_repeats=20, tasks_per_category=200)
QUICK = Config(per_task=1, step_rounds=1, world_repeats=5, tasks_per_category=40)


def percentile(xs: list[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]) of a non-empty list."""
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s) + 0.5) - 1))]


# ---------------------------------------------------------------- (a) scoring throughput


def bench_scoring(tasks: list[Task], cfg: Config) -> dict[str, float]:
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import multi_turn_checker

    t0 = time.perf_counter()
    cache = GroundTruthCache()
    for task in tasks:
        cache.runtime(task)
    cache_build_s = time.perf_counter() - t0

    items: list[tuple[Task, Perturbation]] = []
    for task in tasks:
        gt = [list(turn.calls) for turn in cache.runtime(task).ground_truth.turns]
        items += [(task, p) for p in perturbations(task, gt, SEED, cfg.per_task)]
    calls_N = [p.as_lists() for _, p in items]
    decoded_N = [decoded_turns(t, c) for (t, _), c in zip(items, calls_N, strict=True)]
    entries = {t.id: t.to_bfcl() for t in tasks}

    def official(i: int, tag: str) -> tuple[bool, float]:
        """The checker's verdict on trajectory i and the seconds the checker took."""
        task = items[i][0]
        name = f"bench_{tag}_{i}"  # unique: the checker caches instances by model name
        t = time.perf_counter()
        result = multi_turn_checker(
            decoded_N[i], task.ground_truth, entries[task.id], task.category, name
        )
        elapsed = time.perf_counter() - t
        _drop_official_instances(name)
        return bool(result["valid"]), elapsed

    # Warm-up both sides (imports, first-call caches) on the first 200 trajectories.
    for i in range(min(200, len(items))):
        score_calls(items[i][0], calls_N[i], cache)
        official(i, "warm")

    # Interleaved trajectory by trajectory, so that load from other processes on a shared
    # machine falls on both scorers alike.
    gc.collect()
    ours_N, official_N = [], []
    ours_s = official_s = 0.0
    for i, ((task, _), calls) in enumerate(zip(items, calls_N, strict=True)):
        t = time.perf_counter()
        ours_N.append(score_calls(task, calls, cache).correct)
        ours_s += time.perf_counter() - t
        valid, elapsed = official(i, "run")
        official_N.append(valid)
        official_s += elapsed
    n = len(items)
    return {
        "n": n,
        "agree": sum(a == b for a, b in zip(ours_N, official_N, strict=True)),
        "share_correct": sum(official_N) / n,
        "ours_tps": n / ours_s,
        "official_tps": n / official_s,
        "ours_cold_tps": n / (ours_s + cache_build_s),
        "cache_build_s": cache_build_s,
        "n_tasks": len(tasks),
    }


def _drop_official_instances(model_name: str) -> None:
    from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_utils

    scope = vars(multi_turn_utils)
    for key in [k for k in scope if k.startswith(model_name + "_")]:
        del scope[key]


# ---------------------------------------------------------------- (b) one environment step


def _message(calls: list[ToolCall], rng: random.Random) -> str:
    blocks = "\n".join(
        f"<tool_call>{json.dumps({'name': c.name, 'arguments': c.arguments})}</tool_call>"
        for c in calls
    )
    return f"{rng.choice(['Sure.', 'Let me check that first.', 'I will do this step by step.'])}\n{blocks}"


def bench_steps(tasks: list[Task], cfg: Config) -> dict[str, float]:
    cache = GroundTruthCache()
    rng = random.Random(SEED)
    scripts: list[tuple[Task, list[list[str]]]] = []  # per task: per turn, assistant messages
    for task in tasks:
        turns = []
        for turn in cache.runtime(task).ground_truth.turns:
            calls, msgs = list(turn.calls), []
            while calls:
                k = min(len(calls), rng.choice([1, 2]))
                msgs.append(_message(calls[:k], rng))
                calls = calls[k:]
            turns.append(msgs)
        scripts.append((task, turns))

    calling_s: list[float] = []
    ending_s: list[float] = []
    wrong = 0
    for round_ in range(cfg.step_rounds + 1):  # round 0 is a warm-up
        gc.collect()
        for task, turns in scripts:
            # A step limit above any turn's message count keeps the script aligned with turns.
            ep = Episode(task, cache, max_steps_per_turn=64)
            for msgs in turns:
                for text in msgs:
                    t = time.perf_counter()
                    ep.step(text)
                    dt = time.perf_counter() - t
                    if round_:
                        calling_s.append(dt)
                t = time.perf_counter()
                ep.step("Done.")
                dt = time.perf_counter() - t
                if round_:
                    ending_s.append(dt)
            wrong += round_ > 0 and not ep.score().correct
    return {
        "n_calling": len(calling_s),
        "calling_median_us": statistics.median(calling_s) * 1e6,
        "calling_p99_us": percentile(calling_s, 99) * 1e6,
        "n_ending": len(ending_s),
        "ending_median_us": statistics.median(ending_s) * 1e6,
        "ending_p99_us": percentile(ending_s, 99) * 1e6,
        "not_correct": wrong,
    }


# ---------------------------------------------------------------- (c) fresh worlds


def _per_call_us(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t) / repeats * 1e6


def bench_worlds(tasks: list[Task], cfg: Config) -> dict[str, dict[str, float]]:
    out = {}
    for category in ("base", "long_context"):
        chosen = [t for t in tasks if t.category == category][: cfg.tasks_per_category]
        gc.collect()
        fresh_us, load_us = [], []
        for task in chosen:
            template = WorldTemplate(task)
            fresh_us.append(_per_call_us(template.fresh, cfg.world_repeats))
            load_us.append(_per_call_us(lambda task=task: World.load(task), cfg.world_repeats))
        out[category] = {
            "n_tasks": len(chosen),
            "fresh_median_us": statistics.median(fresh_us),
            "fresh_mean_us": statistics.fmean(fresh_us),
            "load_median_us": statistics.median(load_us),
            "load_mean_us": statistics.fmean(load_us),
        }
    return out


# ---------------------------------------------------------------- report


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"nproc {nproc}, {cpu}, Python {platform.python_version()}, {platform.platform()}"


def report(a: dict, b: dict, c: dict, command: str, quick: bool) -> str:
    ratio = a["ours_tps"] / a["official_tps"]
    cold = a["ours_cold_tps"] / a["official_tps"]
    world_rows = "\n".join(
        f"| fresh world, {cat} ({r['n_tasks']} tasks) | `WorldTemplate.fresh()` median "
        f"{r['fresh_median_us']:.0f} µs (mean {r['fresh_mean_us']:.0f}) vs `World.load` median "
        f"{r['load_median_us']:.0f} µs (mean {r['load_mean_us']:.0f}) | "
        f"{r['load_mean_us'] / r['fresh_mean_us']:.1f}× (mean) |"
        for cat, r in c.items()
    )
    return f"""# Environment benchmarks{" (quick run)" if quick else ""}

Command: `{command}`
Machine: {machine()}
Date: {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}; 1-min load average at the end: {os.getloadavg()[0]:.2f} (other processes share the machine; the scoring ratio is measured interleaved)

| figure | measured | ratio / note |
|---|---|---|
| scoring throughput, warm cache ({a["n"]} perturbed trajectories of {a["n_tasks"]} tasks, one run) | ours {a["ours_tps"]:.0f} traj/s vs bfcl-eval `multi_turn_checker` {a["official_tps"]:.0f} traj/s | **{ratio:.1f}×** (target ≥ 3×) |
| scoring throughput, cold (building the cache for {a["n_tasks"]} tasks: {a["cache_build_s"]:.2f} s, included) | ours {a["ours_cold_tps"]:.0f} traj/s | {cold:.1f}× |
| verdict agreement on the same trajectories | {a["agree"]}/{a["n"]} | officially correct: {a["share_correct"]:.0%} |
| one env step, 1–2 `<tool_call>` blocks (parse + execute + tool messages), {b["n_calling"]} steps | median {b["calling_median_us"]:.0f} µs, p99 {b["calling_p99_us"]:.0f} µs | |
| turn-ending text step (runs the turn check), {b["n_ending"]} steps | median {b["ending_median_us"]:.0f} µs, p99 {b["ending_p99_us"]:.0f} µs | ground-truth replays not correct: {b["not_correct"]} |
{world_rows}

Scoring times count only the scoring calls (ours: `score_calls`; official: `multi_turn_checker`,
which re-creates its instances and re-executes the ground truth through `eval` per trajectory);
converting calls to strings and removing the checker's per-trajectory globals are not counted.
Step times replay every task's ground truth through `Episode.step` with messages of 1–2 calls;
the first pass is a warm-up. Fresh-world times are per world, averaged over repeats per task.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run (smoke check)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the table")
    args = parser.parse_args()
    cfg = QUICK if args.quick else FULL
    command = " ".join(
        [os.path.relpath(sys.executable), os.path.relpath(sys.argv[0]), *sys.argv[1:]]
    )

    tasks = load_bfcl_tasks()
    t0 = time.perf_counter()
    a = bench_scoring(tasks, cfg)
    print(f"(a) scoring done in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    b = bench_steps(tasks, cfg)
    print(f"(b) steps done in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    c = bench_worlds(tasks, cfg)
    print(f"(c) worlds done in {time.perf_counter() - t0:.1f}s", file=sys.stderr)

    text = report(a, b, c, command, args.quick)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
