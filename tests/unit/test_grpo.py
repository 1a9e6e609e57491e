"""The GRPO loss against hand-computed values, and its gradient properties."""

import math

import pytest
import torch

from trainer.grpo import GRPOLossConfig, group_advantages, grpo_loss, token_logprobs


def test_group_advantages_by_hand():
    rewards = torch.tensor([[1.0, 0.0, 0.5, 0.5], [0.3, 0.3, 0.3, 0.3]])
    adv = group_advantages(rewards, eps=0.0)
    # group 0: mean 0.5, unbiased std sqrt((0.25+0.25+0+0)/3) = sqrt(1/6)
    s = math.sqrt(1 / 6)
    assert torch.allclose(adv[0], torch.tensor([0.5 / s, -0.5 / s, 0.0, 0.0]))
    assert torch.equal(adv[1], torch.zeros(4))  # zero variance → zero advantage


def test_nan_rewards_are_masked():
    adv = group_advantages(torch.tensor([[1.0, float("nan"), 0.0], [float("nan"), 1.0, float("nan")]]))
    assert adv[0, 1] == 0 and adv[0, 0] > 0 > adv[0, 2]
    assert torch.equal(adv[1], torch.zeros(3))  # one finite reward: no spread to learn from
    assert torch.isfinite(adv).all()


def test_loss_by_hand_with_clipping_and_kl():
    cfg = GRPOLossConfig(clip_low=0.2, clip_high=0.28, kl_coef=0.1)
    logp = torch.tensor([[0.0, math.log(0.5), math.log(0.9)]])
    old = torch.tensor([[0.0, math.log(0.25), math.log(0.9)]])  # ratio 2.0 at t=1, 1.0 at t=2
    ref = torch.tensor([[0.0, math.log(0.5), math.log(0.45)]])
    mask = torch.tensor([[0, 1, 1]])
    adv = torch.tensor([1.5])
    loss, m = grpo_loss(logp, old, adv, mask, n_tokens=2, cfg=cfg, ref_logp_N_T=ref)
    # t=1: ratio 2 → clipped at 1.28: max(-1.5*2, -1.5*1.28) = -1.92; KL 0
    # t=2: ratio 1: -1.5; KL = e^{ln .5} - ln .5 - 1 = 0.5 + 0.693147 - 1
    kl2 = 0.5 - math.log(0.5) - 1
    expected = (-1.92 + -1.5 + 0.1 * kl2) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert m["loss/clip_frac"] == pytest.approx(0.5)
    assert m["loss/kl"] == pytest.approx(kl2 / 2)


def test_negative_advantage_clips_low():
    cfg = GRPOLossConfig(kl_coef=0.0)
    logp = torch.tensor([[0.0, math.log(0.1)]])
    old = torch.tensor([[0.0, math.log(0.5)]])  # ratio 0.2 < 0.8
    loss, _ = grpo_loss(logp, old, torch.tensor([-1.0]), torch.tensor([[0, 1]]), 1, cfg)
    assert loss.item() == pytest.approx(max(1.0 * 0.2, 1.0 * 0.8))


class Tiny(torch.nn.Module):
    def __init__(self, vocab=11, dim=8):
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(vocab, dim)
        self.out = torch.nn.Linear(dim, vocab)

    def forward(self, input_ids, attention_mask=None):
        class Out:
            pass

        o = Out()
        o.logits = self.out(self.emb(input_ids))
        return o


def _batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 11, (4, 6), generator=g)
    mask = torch.ones(4, 6, dtype=torch.long)
    mask[:, :2] = 0
    return ids, mask


def test_zero_variance_groups_contribute_no_gradient():
    model = Tiny()
    ids, mask = _batch()
    adv = group_advantages(torch.tensor([[0.7, 0.7], [0.7, 0.7]])).flatten()
    logp, _ = token_logprobs(model, ids, torch.ones_like(ids))
    loss, _ = grpo_loss(logp, logp.detach(), adv, mask, int(mask.sum()), GRPOLossConfig(kl_coef=0.0))
    loss.backward()
    assert all(p.grad is None or torch.count_nonzero(p.grad) == 0 for p in model.parameters())


def test_micro_batches_accumulate_to_the_full_batch_gradient():
    ids, mask = _batch()
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5])
    cfg = GRPOLossConfig(kl_coef=0.0)
    n = int(mask.sum())

    full = Tiny()
    logp, _ = token_logprobs(full, ids, torch.ones_like(ids))
    grpo_loss(logp, logp.detach(), adv, mask, n, cfg)[0].backward()

    acc = Tiny()
    for sl in (slice(0, 1), slice(1, 4)):
        logp, _ = token_logprobs(acc, ids[sl], torch.ones_like(ids[sl]))
        grpo_loss(logp, logp.detach(), adv[sl], mask[sl], n, cfg)[0].backward()
    for a, b in zip(full.parameters(), acc.parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, atol=1e-6)


def test_token_logprobs_alignment():
    model = Tiny()
    ids, _ = _batch()
    logp, ent = token_logprobs(model, ids, torch.ones_like(ids), with_entropy=True)
    logits = model(ids).logits
    manual = torch.log_softmax(logits[1, 2], -1)[ids[1, 3]]
    assert logp[1, 3].item() == pytest.approx(manual.item(), rel=1e-5)
    assert (logp[:, 0] == 0).all() and (ent[:, 1:] > 0).all()


def test_loss_config_derives_from_the_optim_config():
    """One declaration per knob: the loss reads OptimConfig's clip and KL fields."""
    from trainer.config import OptimConfig

    optim = OptimConfig()
    plain = GRPOLossConfig()
    assert (plain.clip_low, plain.clip_high, plain.kl_coef) == (
        optim.clip_low, optim.clip_high, optim.kl_coef
    )
    cfg = GRPOLossConfig.from_config(OptimConfig(clip_low=0.1, clip_high=0.3, kl_coef=0.05))
    assert (cfg.clip_low, cfg.clip_high, cfg.kl_coef, cfg.adv_eps) == (0.1, 0.3, 0.05, plain.adv_eps)
    assert GRPOLossConfig.from_config(optim, kl_coef=0.0).kl_coef == 0.0
