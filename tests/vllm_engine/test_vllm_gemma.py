"""The `vllm` engine on real vLLM with Gemma 3 270M (fp32, its own 262k tokenizer and template).

Kept short (a few messages of a few tokens): Gemma samples at a few tokens/s on 2 busy cores.
The base model writes no tool calls, so the episodes here check the loop, masks, scoring and
log-probs, not task success (the tiny policy's tests cover executed calls).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.unit.tiny_lm import demo_tasks
from tests.vllm_engine.conftest import contract_ok, recomputed_logprobs
from trainer.policy import load_policy
from trainer.rollout import HFRolloutEngine, RolloutSettings

pytestmark = pytest.mark.vllm

GREEDY = RolloutSettings(greedy=True, max_new_tokens=8, max_total_tokens=2048, compact_tools=True)


@pytest.fixture(scope="module")
def gemma(gemma_dir: Path) -> tuple[Any, Any]:
    return load_policy(gemma_dir)


@pytest.fixture(scope="module")
def engine(gemma: tuple[Any, Any], gemma_dir: Path) -> Any:
    from trainer.rollout.vllm import VLLMRolloutEngine

    model, tok = gemma
    t0 = time.perf_counter()
    eng = VLLMRolloutEngine(model, tok, GREEDY, model_path=str(gemma_dir), kv_cache_gib=1)
    print(f"gemma vllm engine start: {time.perf_counter() - t0:.1f} s")
    return eng


def test_gemma_greedy_rollout_equals_the_hf_engines(engine: Any, gemma: tuple[Any, Any]) -> None:
    model, tok = gemma
    task = demo_tasks(1)
    engine.settings = GREEDY
    (v,) = engine.rollout(task, 1)[0]
    (h,) = HFRolloutEngine(model, tok, GREEDY).rollout(task, 1)[0]
    contract_ok(v)
    assert v.token_ids == h.token_ids and v.loss_mask == h.loss_mask
    assert v.reward == h.reward and v.stop_reason == h.stop_reason
    assert v.calls_per_turn == h.calls_per_turn
    d = max(abs(a - b) for a, b in zip(v.logprobs, h.logprobs, strict=True))
    print(f"gemma greedy: {v.n_generated} sampled tokens, max |logprob vllm - hf| {d:.2e}")
    assert d < 1e-3


def test_gemma_sampled_logprobs_agree_with_the_policy(engine: Any, gemma: tuple[Any, Any]) -> None:
    model, _ = gemma
    engine.settings = RolloutSettings(
        temperature=1.0, max_new_tokens=8, max_total_tokens=2048, compact_tools=True, seed=1
    )
    engine.generator = torch.Generator().manual_seed(1)
    groups = engine.rollout(demo_tasks(1), 2)
    diffs = []
    for traj in groups[0]:
        contract_ok(traj)
        mine, theirs = recomputed_logprobs(model, traj)
        diffs.append((mine - theirs).abs())
    d = torch.cat(diffs)
    print(f"gemma logprob |vllm - policy| over {d.numel()} tokens: mean {d.mean():.2e} max {d.max():.2e}")
    assert d.max() < 1e-3
