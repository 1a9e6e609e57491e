"""Where the hf engine's rollout time goes on one CUDA device, by how the model is wrapped.

    python3 benchmarks/bench_rollout_gpu.py        # on a CUDA machine (benchmarks/gpu_check.sh runs it)

The same B demo tasks × G greedy rollouts of the tiny model, with the model:
- `fp32`: as the native trainer generates (fp32 weights, no autocast) — the reference;
- `accelerate bf16`: prepared by accelerate with mixed_precision="bf16", as TRL's GRPOTrainer
  holds it when `bf16 = true` (forward wrapped in autocast, outputs converted back to fp32);
- `autocast only`: the original forward inside `torch.autocast(bf16)` (no output conversion);
- `bf16 weights`: the model cast to bf16, no autocast.
Interleaved, median of `--repeat`; generated tokens per second of wall time.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
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
    ap.add_argument("--tasks", type=int, default=4)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default="cuda", help="cuda (the point); cpu only to try the script")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from accelerate import Accelerator

    tasks = demo_subset(load_split("train"))[: args.tasks]
    path = build_tiny_policy(Path("/tmp/bench-gpu/policy"), seed=0, tasks=tasks)
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    settings = RolloutSettings(greedy=True, max_new_tokens=32, max_total_tokens=512, compact_tools=True, seed=0)
    cache = GroundTruthCache()
    for t in tasks:
        cache.runtime(t)

    fp32, tok = load_policy(str(path))
    fp32.to(dev)
    wrapped, _ = load_policy(str(path))
    wrapped = Accelerator(mixed_precision="bf16", cpu=dev.type == "cpu").prepare_model(wrapped.to(dev))
    plain, _ = load_policy(str(path))
    plain.to(dev)
    bf16, _ = load_policy(str(path))
    bf16.to(dev, dtype=torch.bfloat16)
    modes = {
        "fp32 (native trainer)": (fp32, contextlib.nullcontext),
        "accelerate bf16 (TRL, bf16 = true)": (wrapped, contextlib.nullcontext),
        "autocast only": (plain, lambda: torch.autocast(dev.type, dtype=torch.bfloat16)),
        "bf16 weights": (bf16, contextlib.nullcontext),
    }
    runs: dict[str, list[tuple[float, int]]] = {k: [] for k in modes}
    for _ in range(args.repeat + 1):  # the first round warms up
        for name, (model, ctx) in modes.items():
            engine = HFRolloutEngine(model, tok, settings, device=dev, cache=cache)
            sync()
            t0 = time.perf_counter()
            with ctx():
                groups = engine.rollout(tasks, args.group)
            sync()
            runs[name].append((time.perf_counter() - t0, sum(t.n_generated for g in groups for t in g)))
    ref = None
    name = torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"
    print(f"{name}, B={args.tasks}, G={args.group}, greedy, median of {args.repeat}")
    for name, rs in runs.items():
        wall = statistics.median(w for w, _ in rs[1:])
        gen = rs[-1][1]
        tok_s = gen / wall
        ref = ref or tok_s
        print(f"ROLLOUT {name}: {gen} tokens, {wall:.2f} s, {tok_s:.0f} tok/s ({tok_s / ref:.2f}x fp32)")


if __name__ == "__main__":
    main()
