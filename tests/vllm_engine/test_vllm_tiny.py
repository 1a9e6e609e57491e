"""The `vllm` engine on real vLLM with the tiny policy, against the `hf` engine on the same tasks.

One engine for the module (its start is most of the cost); the weight-sync test runs last and
leaves the engine on changed weights.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.unit.tiny_lm import demo_tasks
from tests.vllm_engine.conftest import N_TAUGHT, contract_ok, recomputed_logprobs
from trainer.grpo import GRPOLossConfig, grpo_loss, token_logprobs
from trainer.policy import load_policy
from trainer.rollout import HFRolloutEngine, RolloutSettings

pytestmark = pytest.mark.vllm

GREEDY = RolloutSettings(greedy=True, max_new_tokens=96, max_total_tokens=1024, compact_tools=True)


@pytest.fixture(scope="module")
def policy(taught_policy: Path) -> tuple[Any, Any]:
    return load_policy(taught_policy)


@pytest.fixture(scope="module")
def engine(policy: tuple[Any, Any], taught_policy: Path) -> Any:
    from trainer.rollout.vllm import VLLMRolloutEngine

    model, tok = policy
    t0 = time.perf_counter()
    eng = VLLMRolloutEngine(model, tok, GREEDY, model_path=str(taught_policy), kv_cache_gib=1)
    print(f"vllm engine start: {time.perf_counter() - t0:.1f} s")
    return eng


def test_greedy_rollouts_equal_the_hf_engines(engine: Any, policy: tuple[Any, Any]) -> None:
    """Same tasks, greedy: the same multi-turn episodes token for token (calls parsed, executed,
    scored), the same masks, and log-probs that agree."""
    model, tok = policy
    tasks = demo_tasks(N_TAUGHT)
    engine.settings = GREEDY
    got = engine.rollout(tasks, 2)
    want = HFRolloutEngine(model, tok, GREEDY).rollout(tasks, 2)
    for g_vllm, g_hf in zip(got, want, strict=True):
        for v, h in zip(g_vllm, g_hf, strict=True):
            contract_ok(v)
            assert v.token_ids == h.token_ids and v.loss_mask == h.loss_mask
            assert v.reward == h.reward and v.stop_reason == h.stop_reason
            assert v.calls_per_turn == h.calls_per_turn and v.tool_errors == h.tool_errors
            assert max(abs(a - b) for a, b in zip(v.logprobs, h.logprobs, strict=True)) < 1e-4
    # the taught policy really plays its tasks: several turns, calls executed, progress made
    for traj in (t for g in got for t in g):
        assert len(traj.calls_per_turn) > 1 and sum(map(len, traj.calls_per_turn)) > 0
        assert traj.reward > 0


def test_sampled_logprobs_agree_with_the_policy(engine: Any, policy: tuple[Any, Any]) -> None:
    """At temperature 0.7 / top-p 0.9 vLLM still returns the unmodified distribution's log-probs,
    the ones a training forward recomputes (the GRPO ratio's denominator)."""
    model, _ = policy
    engine.settings = RolloutSettings(
        temperature=0.7, top_p=0.9, max_new_tokens=24, max_total_tokens=1024, compact_tools=True,
        seed=3,
    )
    engine.generator = torch.Generator().manual_seed(3)
    groups = engine.rollout(demo_tasks(N_TAUGHT), 2)
    diffs = []
    for traj in (t for g in groups for t in g):
        contract_ok(traj)
        mine, theirs = recomputed_logprobs(model, traj)
        diffs.append((mine - theirs).abs())
    d = torch.cat(diffs)
    print(f"tiny logprob |vllm - policy| over {d.numel()} tokens: mean {d.mean():.2e} max {d.max():.2e}")
    assert d.max() < 1e-4


def test_same_seed_same_rollouts_rows_differ(engine: Any) -> None:
    """Per-request seeds: the same engine seed repeats the rollouts; a group's rows differ (on a
    task the policy was not taught, where its distribution is broad)."""
    untaught = demo_tasks(N_TAUGHT + 1)[N_TAUGHT:]
    settings = RolloutSettings(
        temperature=1.0, max_new_tokens=16, max_total_tokens=1024, compact_tools=True, seed=11
    )
    engine.settings = settings
    runs = []
    for _ in range(2):
        engine.generator = torch.Generator().manual_seed(11)
        runs.append(engine.rollout(untaught, 3)[0])
    assert [t.token_ids for t in runs[0]] == [t.token_ids for t in runs[1]]
    assert len({tuple(t.token_ids) for t in runs[0]}) > 1  # the rows of a group are not copies


def test_after_a_grpo_step_the_engine_samples_the_new_weights(
    engine: Any, policy: tuple[Any, Any]
) -> None:
    """A GRPO update on vLLM's own trajectories (its log-probs as the old ones), then sync: the
    greedy rollout changes and equals the hf engine's under the new weights."""
    model, tok = policy
    model = copy.deepcopy(model)
    task = demo_tasks(1)
    engine.settings = RolloutSettings(
        temperature=1.0, max_new_tokens=24, max_total_tokens=1024, compact_tools=True, seed=5
    )
    engine.generator = torch.Generator().manual_seed(5)
    (group,) = engine.rollout(task, 2)
    T = max(len(t.token_ids) for t in group)
    ids = torch.tensor([t.token_ids + [tok.pad_token_id] * (T - len(t.token_ids)) for t in group])
    att = torch.tensor([[1] * len(t.token_ids) + [0] * (T - len(t.token_ids)) for t in group])
    mask = torch.tensor([t.loss_mask + [0] * (T - len(t.loss_mask)) for t in group])
    old = torch.tensor([t.logprobs + [0.0] * (T - len(t.logprobs)) for t in group])
    adv = torch.tensor([1.0, -1.0])  # prefer the first sample
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(4):
        logp, _ = token_logprobs(model, ids, att)
        loss, _ = grpo_loss(logp, old, adv, mask, int(mask.sum()), GRPOLossConfig(kl_coef=0.0))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    engine.settings = GREEDY
    before = engine.rollout(task, 1)[0][0]
    t0 = time.perf_counter()
    engine.sync_weights(model)
    print(f"tiny weight sync: {time.perf_counter() - t0:.2f} s")
    after = engine.rollout(task, 1)[0][0]
    want = HFRolloutEngine(model, tok, GREEDY).rollout(task, 1)[0][0]
    assert after.token_ids != before.token_ids
    assert after.token_ids == want.token_ids and after.loss_mask == want.loss_mask
