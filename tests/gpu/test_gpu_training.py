"""A few GRPO steps of a small locally built model on CUDA, bf16 autocast (the GPU path).

Run on a machine with a CUDA device: `pytest -m gpu tests/gpu -s`. Prints the step times.
"""

from __future__ import annotations

import json
import time

import pytest
import torch

from rods.config import Settings
from rods.store.server import RedisServer
from tests.unit.tiny_lm import small_policy
from trainer.config import load_config
from trainer.loop import train

pytestmark = pytest.mark.gpu

CONFIG = """
[policy]
init_from = "{policy}"
device = "cuda"
bf16 = true
[tasks]
subset = "demo"
[rollout]
group_size = 8
tasks_per_step = 4
max_new_tokens = 32
max_total_tokens = 512
compact_tools = true
[optim]
lr = 1e-4
kl_coef = 0.01
micro_batch = 16
[loop]
mode = "static"
steps = 3
checkpoint_every = 3
"""


def test_grpo_steps_on_cuda_with_bf16(tmp_path):
    assert torch.cuda.is_available()
    policy = small_policy(tmp_path / "tiny")
    path = tmp_path / "gpu.toml"
    path.write_text(CONFIG.format(policy=policy))
    with RedisServer() as server:  # every mode samples the run's buffer (static: synthesis off)
        t0 = time.perf_counter()
        result = train(load_config(path), tmp_path / "run", settings=Settings(redis_url=server.url, run="gpu"))
        wall = time.perf_counter() - t0
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert [r["step"] for r in rows] == [1, 2, 3] and result.steps_done == 3
    assert all(r["update/policy_tokens"] > 0 for r in rows)
    print(f"\nGPU: {torch.cuda.get_device_name()}; 3 steps in {wall:.1f}s; "
          f"step times {[round(r['time/step'], 2) for r in rows]}; "
          f"peak memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
