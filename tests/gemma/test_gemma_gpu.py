"""Gemma 3 270M on one CUDA device: SFT steps, native GRPO steps, GRPO under TRL, evaluation under
both protocols, with their figures printed as `GEMMA-GPU …` lines (benchmarks/gpu_gemma.sh brings
the model to a GPU machine and runs this file: `pytest -m gpu tests/gemma/test_gemma_gpu.py -s`).
Deselected without a CUDA device (tests/conftest.py).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
import torch

from rods.config import Settings
from rods.store.server import RedisServer
from tests.unit.tiny_lm import demo_tasks
from trainer.config import TrainConfig
from trainer.policy import load_policy, save_policy
from trainer.sft import sft_batch, sft_examples, sft_loss

pytestmark = [pytest.mark.gpu, pytest.mark.slow, pytest.mark.timeout(900)]


def _config(policy: Path, run: str, steps: int) -> TrainConfig:
    return TrainConfig.model_validate({
        "policy": {"init_from": str(policy), "device": "cuda", "bf16": True},
        "tasks": {"subset": "demo"},
        "rollout": {"group_size": 8, "tasks_per_step": 4, "max_new_tokens": 96, "max_total_tokens": 2048,
                    "max_steps_per_turn": 3, "compact_tools": True},
        "optim": {"lr": 1e-6, "kl_coef": 0.0, "micro_batch": 8},
        "loop": {"mode": "static", "steps": steps, "checkpoint_every": steps, "run": run},
    })


@pytest.fixture(scope="module")
def warm(gemma_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 SFT steps (batch 4) on the demo tasks' conversations, on the GPU; figures printed."""
    torch.manual_seed(0)
    model, tok = load_policy(gemma_dir, device="cuda")
    examples = sft_examples(demo_tasks(27), tok, compact_tools=True, max_seq_tokens=2048)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    model.train()
    losses, tokens = [], 0
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for step in range(30):
        batch = [examples[(4 * step + k) % len(examples)] for k in range(4)]
        ids, att, labels = sft_batch(batch, tok.pad_token_id)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = sft_loss(model, ids.cuda(), att.cuda(), labels.cuda())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        tokens += int(att.sum())
    torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    assert all(math.isfinite(x) for x in losses) and sum(losses[-5:]) < sum(losses[:5]), losses
    print(f"\nGEMMA-GPU sft {torch.cuda.get_device_name()}: 30 steps x 4 conversations, {tokens / wall:.0f} tok/s, "
          f"loss {losses[0]:.3f} -> {losses[-1]:.3f}, peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    out = save_policy(model.eval(), tok, tmp_path_factory.mktemp("gemma") / "warm")
    del model, opt
    torch.cuda.empty_cache()
    return out


@pytest.fixture(scope="module")
def server():  # noqa: ANN201
    with RedisServer() as s:
        yield s


def _report(name: str, run_dir: Path, wall: float) -> list[dict]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    print(f"\nGEMMA-GPU {name}: {len(rows)} steps in {wall:.1f}s; step times "
          f"{[round(r.get('time/step', float('nan')), 1) for r in rows]}; mean R_P "
          f"{[round(r['reward/mean'], 3) for r in rows]}; peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    return rows


def test_native_grpo_steps(warm: Path, server: RedisServer, tmp_path: Path) -> None:
    from trainer.loop import train

    t0 = time.perf_counter()
    result = train(_config(warm, "gemma-native", 3), tmp_path / "run",
                   settings=Settings(redis_url=server.url, run="gemma-native"))
    rows = _report("native grpo (hf engine, bf16 autocast)", tmp_path / "run", time.perf_counter() - t0)
    assert result.steps_done == 3 and [r["step"] for r in rows] == [1, 2, 3]
    assert all(math.isfinite(r["reward/mean"]) for r in rows)


def test_trl_grpo_steps(warm: Path, server: RedisServer, tmp_path: Path) -> None:
    from trainer.trl.loop import train_trl

    t0 = time.perf_counter()
    result = train_trl(_config(warm, "gemma-trl", 2), tmp_path / "run",
                       settings=Settings(redis_url=server.url, run="gemma-trl"))
    rows = _report("trl grpo", tmp_path / "run", time.perf_counter() - t0)
    assert result.steps_done == 2 and all(math.isfinite(r["reward/mean"]) for r in rows)


@pytest.mark.parametrize("protocol", ["train", "bfcl"])
def test_evaluation(warm: Path, tmp_path: Path, protocol: str) -> None:
    from trainer.evaluate import evaluate

    cfg = _config(warm, "unused", 1)
    t0 = time.perf_counter()
    report = evaluate(str(warm), tmp_path, limit=1, device="cuda", protocol=protocol,  # type: ignore[arg-type]
                      rollout_overrides=cfg.rollout.model_dump())
    wall = time.perf_counter() - t0
    table = report.table()
    print(f"\nGEMMA-GPU eval {protocol}: 1 task per category in {wall:.1f}s; overall "
          f"{table['overall']['accuracy']:.1f} %, mean R_P {table['overall']['progress']:.3f}; "
          f"disagreements with bfcl-eval's checker {report.disagreements}")
    assert report.disagreements == 0 and len(report.rows) == 4
