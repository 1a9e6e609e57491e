"""GRPO in pure torch: group advantages, the clipped policy loss, the KL penalty, log-probs.

Notation: N trajectories in an update (B tasks × G rollouts), T tokens per padded sequence.

    A_i = (r_i − mean_G(r)) / (std_G(r) + ε)                 per group; NaN rewards are masked out
    ρ_t = exp(logp_t − logp_old_t)
    L_t = max(−A ρ_t, −A clip(ρ_t, 1 − ε_low, 1 + ε_high)) + β · KL_t
    KL_t = exp(ref_t − logp_t) − (ref_t − logp_t) − 1         (the low-variance "k3" estimator)
    loss = Σ_t mask_t L_t / n_tokens                           token-mean over the whole update

`n_tokens` is the number of policy tokens in the whole update (all micro-batches), so gradient
accumulation over micro-batches gives exactly the gradient of the full-batch token mean.
A group whose rewards are all equal has zero advantages and so contributes no policy gradient
(only the KL term, which pulls towards the reference).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from trainer.config import OptimConfig, default_of


@dataclass(frozen=True)
class GRPOLossConfig:
    """The loss's knobs: `OptimConfig`'s clip and KL fields (defaults and comments live there)."""

    clip_low: float = default_of(OptimConfig, "clip_low")  # ε_low: lower clip of the ratio
    clip_high: float = default_of(OptimConfig, "clip_high")  # ε_high: upper clip, "clip-higher"
    kl_coef: float = default_of(OptimConfig, "kl_coef")  # β; 0 disables the reference model entirely
    adv_eps: float = 1e-6  # ε in the advantage denominator (not in the config file)

    @classmethod
    def from_config(cls, optim: OptimConfig, **overrides: Any) -> GRPOLossConfig:
        """From the trainer's `OptimConfig`, plus overrides (e.g. kl_coef=0.0)."""
        values = {"clip_low": optim.clip_low, "clip_high": optim.clip_high, "kl_coef": optim.kl_coef}
        return cls(**{**values, **overrides})


def group_advantages(rewards_B_G: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Standardise rewards within each group (row). NaN rewards get advantage 0.

    Uses the unbiased standard deviation of the finite rewards of the group; a group with fewer
    than two finite rewards, or zero spread, has all-zero advantages.
    """
    finite_B_G = torch.isfinite(rewards_B_G)
    r_B_G = torch.where(finite_B_G, rewards_B_G, torch.zeros_like(rewards_B_G))
    n_B = finite_B_G.sum(dim=1, keepdim=True).clamp(min=1)
    mean_B = r_B_G.sum(dim=1, keepdim=True) / n_B
    sq_B = torch.where(finite_B_G, (r_B_G - mean_B) ** 2, torch.zeros_like(r_B_G)).sum(1, keepdim=True)
    std_B = torch.sqrt(sq_B / (n_B - 1).clamp(min=1))
    adv_B_G = (r_B_G - mean_B) / (std_B + eps)
    keep_B_G = finite_B_G & (n_B > 1) & (std_B > 0)
    return torch.where(keep_B_G, adv_B_G, torch.zeros_like(adv_B_G))


def token_logprobs(
    model: torch.nn.Module,
    input_ids_N_T: torch.Tensor,
    attention_mask_N_T: torch.Tensor,
    *,
    with_entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log p(token_t | tokens_<t) at every position t ≥ 1 (position 0 gets 0).

    Returns logp_N_T and, if asked, the entropy of the next-token distribution, aligned the same way.
    """
    logits_N_T_V = model(input_ids=input_ids_N_T, attention_mask=attention_mask_N_T).logits
    logits_N_Tm1_V = logits_N_T_V[:, :-1].float()
    targets_N_Tm1 = input_ids_N_T[:, 1:]
    logp_all = F.log_softmax(logits_N_Tm1_V, dim=-1)
    logp_N_Tm1 = logp_all.gather(-1, targets_N_Tm1.unsqueeze(-1)).squeeze(-1)
    pad = logp_N_Tm1.new_zeros(logp_N_Tm1.shape[0], 1)
    logp_N_T = torch.cat([pad, logp_N_Tm1], dim=1)
    entropy_N_T = None
    if with_entropy:
        with torch.no_grad():
            ent_N_Tm1 = -(logp_all.exp() * logp_all).sum(-1)
            entropy_N_T = torch.cat([pad, ent_N_Tm1], dim=1)
    return logp_N_T, entropy_N_T


def grpo_loss(
    logp_N_T: torch.Tensor,
    old_logp_N_T: torch.Tensor,
    adv_N: torch.Tensor,
    mask_N_T: torch.Tensor,
    n_tokens: int,
    cfg: GRPOLossConfig,
    ref_logp_N_T: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The clipped GRPO objective of one micro-batch, normalised by the update's `n_tokens`."""
    mask = mask_N_T.to(logp_N_T.dtype)
    ratio_N_T = torch.exp(logp_N_T - old_logp_N_T)
    adv_N_1 = adv_N.to(logp_N_T.dtype).unsqueeze(1)
    unclipped = -adv_N_1 * ratio_N_T
    clipped = -adv_N_1 * torch.clamp(ratio_N_T, 1.0 - cfg.clip_low, 1.0 + cfg.clip_high)
    pg_N_T = torch.maximum(unclipped, clipped)
    loss_N_T = pg_N_T
    kl_sum = 0.0
    if cfg.kl_coef > 0 and ref_logp_N_T is not None:
        delta = ref_logp_N_T - logp_N_T
        kl_N_T = torch.exp(delta) - delta - 1.0
        loss_N_T = loss_N_T + cfg.kl_coef * kl_N_T
        kl_sum = float((kl_N_T.detach() * mask).sum())
    denom = max(n_tokens, 1)
    loss = (loss_N_T * mask).sum() / denom
    with torch.no_grad():
        clip_frac = ((clipped > unclipped).to(mask.dtype) * mask).sum() / denom
    metrics = {
        "loss/pg": float((pg_N_T.detach() * mask).sum()) / denom,
        "loss/kl": kl_sum / denom,
        "loss/clip_frac": float(clip_frac),
    }
    return loss, metrics
