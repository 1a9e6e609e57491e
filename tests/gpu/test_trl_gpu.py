"""RODS inside TRL's GRPOTrainer on one CUDA device, bf16, beside the native trainer on the same batch.

Run on a machine with a CUDA device and the `trl` extra: `pytest -m gpu tests/gpu -s`. Checks what
the CPU test checks in one process (a report of B groups of G rewards per step, metrics in the
native names, weights changed, a checkpoint with the epoch position) and prints the step times of
both trainers and the share of TRL's step that RODS takes (report + detect + publish + dataset).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import pytest
import torch

pytest.importorskip("trl", reason="the trl extra is not installed (pip install -e '.[trl]')")

from rods.config import Settings  # noqa: E402
from rods.store.buffer import RedisBuffer  # noqa: E402
from rods.store.connection import connect  # noqa: E402
from rods.store.server import RedisServer  # noqa: E402
from tests.integration.test_trl import Jitter  # noqa: E402
from tests.unit.tiny_lm import small_policy  # noqa: E402
from trainer.config import TrainConfig  # noqa: E402

pytestmark = pytest.mark.gpu
STEPS = 6


def _config(policy: Path, run: str) -> TrainConfig:
    return TrainConfig.model_validate({
        "policy": {"init_from": str(policy), "device": "cuda", "bf16": True, "seed": 0},
        "tasks": {"subset": "demo"},
        "rollout": {"group_size": 8, "tasks_per_step": 4, "max_new_tokens": 32, "max_total_tokens": 512,
                    "compact_tools": True},
        "optim": {"lr": 1e-4, "kl_coef": 0.0, "micro_batch": 16},
        "loop": {"mode": "rods", "steps": STEPS, "checkpoint_every": STEPS, "steps_per_epoch": 3, "run": run},
    })


def _metrics(run_dir: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_trl_and_native_train_on_cuda_bf16(tmp_path):
    from safetensors.torch import load_file

    from trainer.loop import train
    from trainer.trl.loop import train_trl

    assert torch.cuda.is_available()
    policy = small_policy(tmp_path / "tiny")
    with RedisServer() as server:
        walls, visits = {}, {}
        for name in ("native", "trl"):
            settings = Settings(redis_url=server.url, run=f"gpu-{name}")
            run_dir = tmp_path / name
            t0 = time.perf_counter()
            if name == "trl":
                # the untrained model scores 0 everywhere: a tiny jitter (advantages only) gives a gradient
                train_trl(_config(policy, settings.run), run_dir, settings=settings, extra_reward_funcs=[Jitter()])
            else:
                train(_config(policy, settings.run), run_dir, settings=settings)
            walls[name] = time.perf_counter() - t0
            torch.cuda.synchronize()
            visits[name] = sum(rec.visits for rec in RedisBuffer(connect(settings), settings.run).records())

    trl, native = _metrics(tmp_path / "trl"), _metrics(tmp_path / "native")
    assert [m["step"] for m in trl] == [m["step"] for m in native] == list(range(1, STEPS + 1))
    for key in ("reward/mean", "boundary/frac_boundary", "buffer/active", "time/rollout", "time/step", "time/rods"):
        assert all(key in m for m in trl), key
    assert visits == {"native": STEPS * 4, "trl": STEPS * 4}  # every step reported B groups to the buffer
    ckpt = tmp_path / "trl" / "checkpoints" / f"checkpoint-{STEPS}"
    assert (ckpt / "rods_state.json").exists()
    before, after = load_file(str(policy / "model.safetensors")), load_file(str(ckpt / "model.safetensors"))
    assert any(not torch.equal(before[k], after[k].to(before[k].dtype)) for k in before)

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows[1:])  # step 1 carries the warm-up

    rods_share = statistics.median(r["time/rods"] / r["time/step"] for r in trl[1:])
    print(f"\nGPU {torch.cuda.get_device_name()}: {STEPS} steps, B=4, G=8, bf16; wall native "
          f"{walls['native']:.1f}s, trl {walls['trl']:.1f}s; median step native {med(native, 'time/step'):.2f}s "
          f"(rollout {med(native, 'time/rollout'):.2f}s), trl {med(trl, 'time/step'):.2f}s "
          f"(rollout {med(trl, 'time/rollout'):.2f}s); trl/native {med(trl, 'time/step') / med(native, 'time/step'):.2f}; "
          f"RODS share of the TRL step {100 * rods_share:.2f} %; peak memory "
          f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
