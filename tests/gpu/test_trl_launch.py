"""RODS inside TRL under `accelerate launch` with the shipped sharding configs, on this host's GPUs.

Each config of `configs/accelerate/` (DeepSpeed ZeRO-3, FSDP2) is launched as a user would launch
it, with `num_processes` cut to the GPUs present (1 on a one-GPU host; sharding over one process
still runs the wrapping, the parameter gathering for generation and the checkpoint format).
A run of 4 steps, then the same command with `steps = 6`, which must resume from checkpoint-4.
Checked: the sharding engine was really in effect (accelerate's distributed type, written by the
worker), every step reported B groups to the buffer, metrics in the native names for steps 1..6,
and the last checkpoint loads with transformers, with weights that differ from the initial ones.

Run on a CUDA host with the `trl` extra (and `deepspeed` for ZeRO-3): `pytest -m gpu tests/gpu -s`.
Run as a script (`accelerate launch … tests/gpu/test_trl_launch.py ARGS.json`) it is the worker.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[2]
B, G = 4, 8  # 32 rollouts per step: splits over 1, 2 or 4 processes in micro-batches of 4
CONFIGS = {"zero3": "zero3-4gpu.yaml", "fsdp2": "fsdp2-4gpu.yaml"}
EXPECTED = {"zero3": "DEEPSPEED", "fsdp2": "FSDP"}


def _config(policy: str, run: str, steps: int) -> dict:
    return {
        "policy": {"init_from": policy, "device": "cuda", "bf16": True, "seed": 0},
        "tasks": {"subset": "demo"},
        "rollout": {"group_size": G, "tasks_per_step": B, "max_new_tokens": 32, "max_total_tokens": 512,
                    "compact_tools": True},
        "optim": {"lr": 1e-4, "kl_coef": 0.0, "micro_batch": 4},
        "loop": {"mode": "rods", "steps": steps, "checkpoint_every": 2, "steps_per_epoch": 2, "run": run},
    }


@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_trl_runs_and_resumes_under_the_shipped_accelerate_config(tmp_path, name):
    pytest.importorskip("trl", reason="the trl extra is not installed (pip install -e '.[trl]')")
    if name == "zero3":
        pytest.importorskip("deepspeed", reason="ZeRO-3 needs deepspeed (pip install deepspeed)")
    from transformers import AutoModelForCausalLM

    from rods.config import Settings
    from rods.store.buffer import RedisBuffer
    from rods.store.connection import connect
    from rods.store.server import RedisServer
    from tests.integration.test_trl import _free_port
    from tests.unit.tiny_lm import small_policy

    n_gpus = torch.cuda.device_count()
    assert n_gpus >= 1
    accel = yaml.safe_load((ROOT / "configs" / "accelerate" / CONFIGS[name]).read_text())
    accel["num_processes"] = max(w for w in (1, 2, 4) if w <= n_gpus)
    accel_file = tmp_path / "accelerate.yaml"
    accel_file.write_text(yaml.safe_dump(accel))
    policy = small_policy(tmp_path / "tiny")
    run_dir = tmp_path / "run"
    with RedisServer() as server:
        run = f"launch-{name}"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "TRL_EXPERIMENTAL_SILENCE": "1"}
        walls = []
        for steps in (4, 6):
            args = {"config": _config(str(policy), run, steps), "redis_url": server.url, "run": run,
                    "run_dir": str(run_dir), "out": str(tmp_path / f"dist-{steps}.json")}
            (tmp_path / "args.json").write_text(json.dumps(args))
            argv = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(accel_file),
                    "--main_process_port", str(_free_port()), __file__, str(tmp_path / "args.json")]
            t0 = time.perf_counter()
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
            walls.append(time.perf_counter() - t0)
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
            assert json.loads((tmp_path / f"dist-{steps}.json").read_text())["distributed_type"] == EXPECTED[name]
        settings = Settings(redis_url=server.url, run=run)
        visits = sum(rec.visits for rec in RedisBuffer(connect(settings), run).records())

    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == list(range(1, 7))  # 4 steps, then 2 more after the resume
    assert all("reward/mean" in m and "buffer/active" in m and "time/rods" in m for m in metrics)
    assert visits == 6 * B  # every step reported its B groups, none twice
    last = run_dir / "checkpoints" / "checkpoint-6"
    assert (last / "rods_state.json").exists()
    before = AutoModelForCausalLM.from_pretrained(policy).state_dict()
    after = AutoModelForCausalLM.from_pretrained(last).state_dict()
    assert any(not torch.equal(before[k], after[k].to(before[k].dtype)) for k in before)
    step = statistics.median(m["time/step"] for m in metrics)
    rollout = statistics.median(m["time/rollout"] for m in metrics)
    print(f"\nLAUNCH {name} on {accel['num_processes']} × {torch.cuda.get_device_name()}: "
          f"4 steps {walls[0]:.1f}s, resume + 2 steps {walls[1]:.1f}s (launch included); median step "
          f"{step:.2f}s; rollout {rollout:.2f}s")


def _worker(path: str) -> None:
    """One process of the launched run: the TRL loop with the test's jitter reward."""
    from accelerate.state import AcceleratorState

    from rods.config import Settings
    from tests.integration.test_trl import Jitter
    from trainer.config import TrainConfig
    from trainer.trl.loop import train_trl

    a = json.loads(Path(path).read_text())
    settings = Settings(redis_url=a["redis_url"], run=a["run"], connect_retries=8)
    cfg = TrainConfig.model_validate(a["config"])
    # the untrained model scores 0 everywhere: a tiny jitter (advantages only) gives a gradient
    train_trl(cfg, Path(a["run_dir"]), settings=settings, extra_reward_funcs=[Jitter()])
    state = AcceleratorState()
    if state.is_main_process:
        Path(a["out"]).write_text(json.dumps({"distributed_type": state.distributed_type.name}))


if __name__ == "__main__":
    _worker(sys.argv[1])
