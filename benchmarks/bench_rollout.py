"""Rollout throughput: the batched `hf` engine against one-trajectory-at-a-time generation.

    .venv/bin/python benchmarks/bench_rollout.py --model runs/demo/sft/best   # a warm-started policy
    .venv/bin/python benchmarks/bench_rollout.py                              # the untrained tiny model

Three modes of the same engine code (`HFRolloutEngine`) on the same B tasks × G rollouts of the
demo subset, for each B of `--tasks`: one trajectory at a time (`sequential=True`, the
reference), lock-step rounds (`refill_frac=1.0`) and continuous batching (the default
`refill_frac`); greedy by default so all generate exactly the same tokens (the test suite checks
they do, and the script warns if they do not), in one run, sequential first. Reported: generated
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
from trainer.config import RolloutConfig
from trainer.policy import build_tiny_policy, load_policy
from trainer.rollout import HFRolloutEngine, RolloutSettings


def measure(engines: list[HFRolloutEngine], tasks: list, group: int, repeat: int) -> list[dict]:
    """Each engine `repeat` times, interleaved (so machine noise hits all modes alike); per engine
    the run with the median wall time."""
    runs: list[list[dict]] = [[] for _ in engines]
    for _ in range(repeat):
        for engine, out in zip(engines, runs, strict=True):
            out.append(run_once(engine, tasks, group))
    return [sorted(out, key=lambda r: r["wall"])[len(out) // 2] for out in runs]


def run_once(engine: HFRolloutEngine, tasks: list, group: int) -> dict:
    t0 = time.perf_counter()
    groups = engine.rollout(tasks, group)
    wall = time.perf_counter() - t0
    trajs = [t for g in groups for t in g]
    gen = sum(t.n_generated for t in trajs)
    return {
        "gen": gen,
        "wall": wall,
        "tok_s": gen / wall,
        "reward": sum(t.reward for t in trajs) / len(trajs),
        "seq_len": sum(len(t.token_ids) for t in trajs) / len(trajs),
        "tokens": [t.token_ids for t in trajs],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="policy dir (default: build the tiny model)")
    ap.add_argument("--tasks", type=int, nargs="+", default=[4, 8], help="B values: demo tasks")
    ap.add_argument("--group", type=int, default=8, help="G: rollouts per task")
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--max-total-tokens", type=int, default=1024)
    ap.add_argument(
        "--refill-frac",
        type=float,
        default=RolloutConfig.model_fields["refill_frac"].default,
        help="continuous batching: refill waiting rows once they are this share of the batch",
    )
    ap.add_argument("--repeat", type=int, default=3, help="runs per mode; the median is reported")
    ap.add_argument("--sample", action="store_true", help="temperature 1.0 instead of greedy")
    ap.add_argument("--out", default="benchmarks/results/rollout.md")
    args = ap.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    path = args.model or str(build_tiny_policy(Path("runs/bench/policy-init"), seed=0))
    model, tok = load_policy(path)
    settings = RolloutSettings(
        greedy=not args.sample,
        temperature=1.0,
        max_new_tokens=args.max_new_tokens,
        max_total_tokens=args.max_total_tokens,
        compact_tools=True,  # the tiny model's template
        seed=0,
    )
    modes = (
        ("sequential (one trajectory at a time)", {"sequential": True}),
        ("batched, lock-step rounds (refill_frac 1.0)", {"refill_frac": 1.0}),
        (
            f"batched, continuous (refill_frac {args.refill_frac})",
            {"refill_frac": args.refill_frac},
        ),
    )
    cmd = "HF_HUB_OFFLINE=1 .venv/bin/python " + " ".join([sys.argv[0], *sys.argv[1:]])
    lines = [
        "# Rollout throughput (hf engine, CPU)",
        "",
        f"Command: `{cmd}`",
        f"Machine: nproc {os.cpu_count()}, torch threads {torch.get_num_threads()}, "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
        f"torch {torch.__version__}; shared with other sessions (1-min load average at the "
        f"start: {os.getloadavg()[0]:.2f})",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"Policy: `{path}`; demo tasks × G = {args.group}; "
        f"{'greedy' if not args.sample else 'temperature 1.0'}; max_new_tokens "
        f"{args.max_new_tokens}, max_total_tokens {args.max_total_tokens}",
        "",
        "| B | mode | generated tokens | wall s | generated tok/s | vs sequential "
        "| mean R_P | mean sequence tokens |",
        "|---|---|---|---|---|---|---|---|",
    ]
    summary = []
    for n_tasks in args.tasks:
        tasks = demo_subset(load_split("train"))[:n_tasks]
        cache = GroundTruthCache()
        for t in tasks:  # execute ground truths outside the clock
            cache.runtime(t)
        engines = [HFRolloutEngine(model, tok, settings, cache=cache, **kw) for _, kw in modes]
        results = measure(engines, tasks, args.group, args.repeat)
        for (name, _), r in zip(modes, results, strict=True):
            ratio = r["tok_s"] / results[0]["tok_s"]
            print(
                f"B={n_tasks} {name}: {r['gen']} tokens in {r['wall']:.1f} s = "
                f"{r['tok_s']:.0f} tok/s ({ratio:.1f}x)",
                flush=True,
            )
            lines.append(
                f"| {n_tasks} | {name} | {r['gen']} | {r['wall']:.1f} | {r['tok_s']:.0f} "
                f"| {ratio:.1f}× | {r['reward']:.3f} | {r['seq_len']:.0f} |"
            )
        same = all(r["tokens"] == results[0]["tokens"] for r in results[1:])
        if not args.sample and not same:
            print(f"warning: B={n_tasks}: batched tokens differ from sequential", file=sys.stderr)
        summary.append(
            f"- B = {n_tasks}: **continuous / sequential {results[2]['tok_s'] / results[0]['tok_s']:.1f}×**"
            f" (target ≥ 4×); lock-step / sequential "
            f"{results[1]['tok_s'] / results[0]['tok_s']:.1f}×; identical tokens in all modes: "
            f"{'yes' if same else 'no'}."
        )
    lines += [
        "",
        *summary,
        "",
        f"Each mode ran {args.repeat} times, interleaved with the others; the table shows each",
        "mode's median run. All modes are the same engine code (`HFRolloutEngine`); the sequential one runs the",
        "rows one by one. Wall time covers whole rollouts: prompt and tool-result prefill, decoding,",
        "environment steps and chat-template rendering. Load average at the end: "
        f"{os.getloadavg()[0]:.2f}.",
    ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
