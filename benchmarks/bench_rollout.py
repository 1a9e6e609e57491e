"""Rollout throughput: the batched `hf` engine against one-trajectory-at-a-time generation.

    .venv/bin/python benchmarks/bench_rollout.py --model runs/demo/sft/best   # a warm-started policy
    .venv/bin/python benchmarks/bench_rollout.py                              # the untrained tiny model

Both modes run the same engine code (`HFRolloutEngine`, `sequential=True` for the reference) on
the same B tasks × G rollouts of the demo subset, greedy by default so both generate exactly the
same tokens (the test suite checks they do), in one run, sequential first. Reported: generated
(policy) tokens per second of wall time, whole rollouts included (prefill of prompts and tool
results, environment steps, chat-template rendering). Writes benchmarks/results/rollout.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch

from rods.env import GroundTruthCache
from rods.tasks import load_split
from trainer.chat import demo_subset
from trainer.policy import build_tiny_policy, load_policy
from trainer.rollout import HFRolloutEngine, RolloutSettings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="policy dir (default: build the tiny model)")
    ap.add_argument("--tasks", type=int, default=4, help="B: demo tasks")
    ap.add_argument("--group", type=int, default=8, help="G: rollouts per task")
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--max-total-tokens", type=int, default=1024)
    ap.add_argument("--sample", action="store_true", help="temperature 1.0 instead of greedy")
    ap.add_argument("--out", default="benchmarks/results/rollout.md")
    args = ap.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    path = args.model or str(build_tiny_policy(Path("runs/bench/policy-init"), seed=0))
    model, tok = load_policy(path)
    tasks = demo_subset(load_split("train"))[: args.tasks]
    settings = RolloutSettings(
        greedy=not args.sample,
        temperature=1.0,
        max_new_tokens=args.max_new_tokens,
        max_total_tokens=args.max_total_tokens,
        seed=0,
    )
    cache = GroundTruthCache()
    for t in tasks:  # execute ground truths outside the clock
        cache.runtime(t)
    rows = []
    for name, sequential in (
        ("sequential (one trajectory at a time)", True),
        ("batched (all B×G in lock-step)", False),
    ):
        engine = HFRolloutEngine(model, tok, settings, cache=cache, sequential=sequential)
        t0 = time.perf_counter()
        groups = engine.rollout(tasks, args.group)
        wall = time.perf_counter() - t0
        trajs = [t for g in groups for t in g]
        gen = sum(t.n_generated for t in trajs)
        rows.append(
            (
                name,
                gen,
                wall,
                gen / wall,
                sum(t.reward for t in trajs) / len(trajs),
                sum(len(t.token_ids) for t in trajs) / len(trajs),
            )
        )
        print(f"{name}: {gen} tokens in {wall:.1f} s = {gen / wall:.0f} tok/s", flush=True)
    ratio = rows[1][3] / rows[0][3]
    load = os.getloadavg()[0]
    cmd = "HF_HUB_OFFLINE=1 .venv/bin/python " + " ".join([sys.argv[0], *sys.argv[1:]])
    lines = [
        "# Rollout throughput (hf engine, CPU)",
        "",
        f"Command: `{cmd}`",
        f"Machine: nproc {os.cpu_count()}, torch threads {torch.get_num_threads()}, "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
        f"torch {torch.__version__}; shared with other sessions (1-min load average at the end: {load:.2f})",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"Policy: `{path}`; {len(tasks)} demo tasks × G = {args.group}; "
        f"{'greedy' if not args.sample else 'temperature 1.0'}; max_new_tokens {args.max_new_tokens}, "
        f"max_total_tokens {args.max_total_tokens}",
        "",
        "| mode | generated tokens | wall s | generated tok/s | mean R_P | mean sequence tokens |",
        "|---|---|---|---|---|---|",
        *[
            f"| {n} | {g} | {w:.1f} | {r:.0f} | {rp:.3f} | {ln:.0f} |"
            for n, g, w, r, rp, ln in rows
        ],
        "",
        f"**Batched / sequential: {ratio:.1f}×** (target ≥ 4×).",
        "",
        "Both modes are the same engine code; the sequential one runs the rows one by one.",
        "Wall time covers whole rollouts: prompt and tool-result prefill, decoding, environment",
        "steps and chat-template rendering.",
    ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
