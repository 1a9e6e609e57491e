"""Harness overhead: one arm's training under `rods experiment` vs the same `rods train` run.

    .venv/bin/python benchmarks/bench_experiment.py --model runs/exp/warmstart/sft/best [--steps 4] [--pairs 2]

Both sides train the static arm of configs/experiment-cpu.toml for the same steps from the same
warm start, seed and batches, on a private Redis. The reference is the plain command
(`rods train --mode static`, its own process, wall time of the command); the harness side is
`rods experiment --arms static --seeds 0` with evaluation points beyond the run (no held-out
evaluation), wall time of the command. Pairs run alternately; the figure is the median ratio.
The harness adds its plan, the warm-start check and the per-step progress callback; both start
a Python process with torch, so that cost is on both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True", "TOKENIZERS_PARALLELISM": "false"}


def _timed(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def _train_sections(toml_text: str) -> str:
    """The TOML without its [experiment] and [warm_start] tables."""
    keep, out = True, []
    for line in toml_text.splitlines():
        if line.startswith("["):
            keep = line.strip() not in ("[experiment]", "[warm_start]")
        if keep:
            out.append(line)
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="the warm start (an SFT checkpoint dir)")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--pairs", type=int, default=2)
    args = ap.parse_args()
    from rods.store.server import RedisServer

    rods = [sys.executable, "-m", "cli"]
    cfg_text = (ROOT / "configs" / "experiment-cpu.toml").read_text()
    ratios, plain_s, harness_s = [], [], []
    with RedisServer() as server, tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        # the harness config: evaluation only after the budget (eval_points=1 evaluates the last
        # checkpoint; protocols=[] skips it), the plain run reads the same file's train sections
        exp_cfg = tmpd / "exp.toml"
        exp_cfg.write_text(cfg_text.replace('protocols = ["train", "bfcl"]', "protocols = []"))
        plain_cfg = tmpd / "train.toml"  # the experiment file's trainer sections, nothing else
        plain_cfg.write_text(_train_sections(cfg_text))
        for k in range(args.pairs):
            env = {**ENV, "REDIS_URL": server.url, "RODS_RUN": f"plain{k}"}
            plain_dir = tmpd / f"plain{k}"
            plain_s.append(_timed([*rods, "train", "--config", str(plain_cfg),
                                   "--mode", "static", "--run-dir", str(plain_dir), "--init-from", args.model,
                                   "--steps", str(args.steps)], env))  # fmt: skip
            out = tmpd / f"exp{k}"
            (out / "warmstart" / "sft").mkdir(parents=True)
            shutil.copytree(args.model, out / "warmstart" / "sft" / "best")
            harness_s.append(_timed([*rods, "experiment", "--config", str(exp_cfg), "--arms", "static",
                                     "--seeds", "0", "--steps", str(args.steps), "--out", str(out)], ENV))  # fmt: skip
            ratios.append(harness_s[-1] / plain_s[-1])
    res = {"steps": args.steps, "plain_s": plain_s, "harness_s": harness_s, "ratios": ratios,
           "median_ratio": statistics.median(ratios)}  # fmt: skip
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
