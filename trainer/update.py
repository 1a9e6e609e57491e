"""One GRPO update from a step's rollout groups: pad, micro-batch, accumulate, clip, step.

Strictly on-policy by default (`ppo_epochs = 1`): the old log-probs are the current model's
log-probs detached, so the ratio is 1 and the gradient is the plain policy gradient with group
advantages; the model does not change between micro-batches because the optimizer steps once per
update. With `ppo_epochs > 1` the old log-probs are computed once, before the first pass, and
each later pass is clipped against them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from trainer.grpo import GRPOLossConfig, group_advantages, grpo_loss, token_logprobs
from trainer.types import Trajectory


@dataclass
class PaddedBatch:
    input_ids_N_T: torch.Tensor
    attention_N_T: torch.Tensor
    loss_mask_N_T: torch.Tensor
    adv_N: torch.Tensor


def pad_trajectories(
    token_ids_N: Sequence[Sequence[int]],
    loss_masks_N: Sequence[Sequence[int]],
    adv_N: torch.Tensor,
    pad_id: int,
) -> PaddedBatch:
    """Right-pad token ids and masks to the longest sequence of the batch."""
    T = max(len(t) for t in token_ids_N)
    N = len(token_ids_N)
    ids = torch.full((N, T), pad_id, dtype=torch.long)
    att = torch.zeros((N, T), dtype=torch.long)
    mask = torch.zeros((N, T), dtype=torch.long)
    for i, (toks, m) in enumerate(zip(token_ids_N, loss_masks_N, strict=True)):
        ids[i, : len(toks)] = torch.tensor(toks, dtype=torch.long)
        att[i, : len(toks)] = 1
        mask[i, : len(m)] = torch.tensor(m, dtype=torch.long)
    return PaddedBatch(ids, att, mask, adv_N)


def autocast(device: torch.device | str, bf16: bool) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on `device` when asked; a no-op context otherwise."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


def grpo_update(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    groups_B_G: Sequence[Sequence[Trajectory]],
    *,
    loss_cfg: GRPOLossConfig,
    micro_batch: int,
    grad_clip: float,
    pad_id: int,
    device: torch.device,
    bf16: bool = False,
    ppo_epochs: int = 1,
    ref_model: torch.nn.Module | None = None,
) -> dict[str, float]:
    """Update `model` from rollout groups (each trajectory: token_ids, loss_mask, reward).

    The token mean is over every policy token of the update. Trajectories with zero advantage
    (zero-variance groups, NaN rewards) have exactly zero policy gradient; without a KL term they
    are skipped, saving their forward and backward passes (they still count in the mean).
    """
    t0 = time.perf_counter()
    rewards_B_G = torch.tensor([[t.reward for t in g] for g in groups_B_G], dtype=torch.float32)
    adv_B_G = group_advantages(rewards_B_G, loss_cfg.adv_eps)
    flat = [t for g in groups_B_G for t in g]
    adv_N = adv_B_G.flatten()
    use_kl = ref_model is not None and loss_cfg.kl_coef > 0
    n_tokens = sum(sum(t.loss_mask) for t in flat)
    keep = [i for i in range(len(flat)) if (use_kl or adv_N[i] != 0) and sum(flat[i].loss_mask) > 0]
    n_tokens_adv = sum(sum(t.loss_mask) for t, a in zip(flat, adv_N.tolist(), strict=True) if a != 0)
    metrics: dict[str, float] = {
        "update/trajectories": float(len(keep)),
        "update/skipped_zero_adv": float(len(flat) - len(keep)),
        # the share of the update's policy tokens that carry a policy gradient (depletion)
        "train/frac_tokens_nonzero_adv": n_tokens_adv / n_tokens if n_tokens else float("nan"),
    }
    if not keep:
        metrics["time/update"] = time.perf_counter() - t0
        return metrics
    chunks = [keep[i : i + micro_batch] for i in range(0, len(keep), micro_batch)]
    batches = [
        pad_trajectories(
            [flat[i].token_ids for i in c], [flat[i].loss_mask for i in c], adv_N[c], pad_id
        )
        for c in chunks
    ]
    model.train()
    old_logps: list[torch.Tensor | None] = [None] * len(batches)
    ref_logps: list[torch.Tensor | None] = [None] * len(batches)
    with torch.no_grad(), autocast(device, bf16):
        for k, b in enumerate(batches):
            ids, att = b.input_ids_N_T.to(device), b.attention_N_T.to(device)
            if ppo_epochs > 1:
                old_logps[k] = token_logprobs(model, ids, att)[0]
            if use_kl and ref_model is not None:
                ref_logps[k] = token_logprobs(ref_model, ids, att)[0]
    sums: dict[str, float] = {}
    grad_norm = 0.0
    for _epoch in range(ppo_epochs):
        optimizer.zero_grad(set_to_none=True)
        entropy_sum = 0.0
        for k, b in enumerate(batches):
            ids, att = b.input_ids_N_T.to(device), b.attention_N_T.to(device)
            mask = b.loss_mask_N_T.to(device)
            with autocast(device, bf16):
                logp, ent = token_logprobs(model, ids, att, with_entropy=True)
            old = old_logps[k]
            if old is None:
                old = logp.detach()
            loss, m = grpo_loss(logp, old, b.adv_N.to(device), mask, n_tokens, loss_cfg, ref_logps[k])
            loss.backward()
            for key, v in m.items():
                sums[key] = sums.get(key, 0.0) + v
            entropy_sum += float((ent * mask).sum()) if ent is not None else 0.0
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip))
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    metrics.update({k: v / ppo_epochs for k, v in sums.items()})
    metrics["update/entropy"] = entropy_sum / max(1, sum(sum(flat[i].loss_mask) for i in keep))
    metrics["update/grad_norm"] = grad_norm
    metrics["update/policy_tokens"] = float(n_tokens)
    metrics["time/update"] = time.perf_counter() - t0
    return metrics
