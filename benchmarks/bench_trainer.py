"""Trainer figures: detector overhead (rods vs static step) and peak memory of a CPU step.

    .venv/bin/python benchmarks/bench_trainer.py --model runs/demo/sft/best [--steps 4]

Detector overhead. Each measured step samples the same batch, rolls it out, updates the model,
then runs BOTH after-step paths on the same rollout groups: the group stats alone (static)
and the rods source's report + detection + publish to a private Redis. The rods step is the
static step plus the difference of the two after-step times; the ratio is reported per step and
as a median. (Rolling out twice to compare two whole steps would measure sampling noise, which is
far larger than the detector.) Peak memory: the process's max RSS after the steps.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path

import torch

from rods.boundary import boundary_metrics, group_stats
from rods.config import Settings
from rods.signature import compute_signature
from rods.store.buffer import RedisBuffer
from rods.store.connection import connect
from rods.store.server import RedisServer
from rods.store.stream import BoundaryStream
from trainer.config import load_config
from trainer.grpo import GRPOLossConfig
from trainer.loop import training_tasks
from trainer.policy import load_policy
from trainer.rollout import make_engine
from trainer.sources import BufferSource
from trainer.update import grpo_update


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="a warm-started policy dir (rods sft)")
    ap.add_argument("--config", default="configs/demo.toml")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--out", default="benchmarks/results/trainer.md")
    args = ap.parse_args()

    cfg = load_config(args.config)
    torch.manual_seed(0)
    model, tok = load_policy(args.model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr)
    engine = make_engine(cfg.rollout, model, tok)
    seeds = training_tasks(cfg)
    loss_cfg = GRPOLossConfig.from_config(cfg.optim, kl_coef=0.0)

    rows = []
    with RedisServer() as server:
        settings = Settings(redis_url=server.url, run="bench")
        r = connect(settings)
        buffer = RedisBuffer(r, "bench", settings.pool_rules())
        buffer.load_seeds(seeds)
        sigs = {t.id: compute_signature(t) for t in seeds}
        rods = BufferSource(buffer, BoundaryStream(r, "bench", settings), cfg.rollout.tasks_per_step,
                            0, settings.detector_rules(), 0, sigs)
        for step in range(args.steps):
            t0 = time.perf_counter()
            tasks = rods.sample(step)
            groups = engine.rollout(tasks, cfg.rollout.group_size)
            grpo_update(model, optimizer, groups, loss_cfg=loss_cfg, micro_batch=cfg.optim.micro_batch,
                        grad_clip=cfg.optim.grad_clip, pad_id=tok.pad_token_id, device=torch.device("cpu"))
            t1 = time.perf_counter()
            boundary_metrics([group_stats(g[0].task_id, [t.reward for t in g]) for g in groups])
            t2 = time.perf_counter()
            rods.after_step(step, copy.deepcopy(groups))
            t3 = time.perf_counter()
            static_step = (t1 - t0) + (t2 - t1)
            rods_step = (t1 - t0) + (t3 - t2)
            rows.append({"step": step, "static_s": static_step, "rods_s": rods_step,
                         "detector_s": t3 - t2, "ratio": rods_step / static_step})
        r.close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ratio = statistics.median(x["ratio"] for x in rows)
    det_ms = 1000 * statistics.median(x["detector_s"] for x in rows)
    step_s = statistics.median(x["static_s"] for x in rows)
    load = os.getloadavg()[0]
    text = f"""## Trainer (CPU, demo configuration)

Command: `.venv/bin/python benchmarks/bench_trainer.py --model {args.model} --steps {args.steps}`
Machine: nproc {os.cpu_count()}, Python {platform.python_version()}, torch {torch.__version__}; 1-min load {load:.2f}
Batch: {cfg.rollout.tasks_per_step} tasks × G = {cfg.rollout.group_size}, the demo subset, fp32.

| figure | result | target |
|---|---|---|
| detector overhead: rods step / static step (median over {args.steps} steps) | **{ratio:.4f}** | ≤ 1.02 |
| rods after-step work (report + detect + publish, private Redis), median | {det_ms:.2f} ms | |
| static step (rollout + update), median | {step_s:.1f} s | |
| peak memory (max RSS of the process: model, optimizer, rollouts, update) | {peak_mb:.0f} MB | |

Per step: {json.dumps([{k: round(v, 4) for k, v in x.items()} for x in rows])}
"""
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
