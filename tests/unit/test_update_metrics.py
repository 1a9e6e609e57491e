"""The depletion metric of an update: the share of policy tokens with a non-zero advantage."""

import math

import torch

from rods.env.reward import Score
from tests.unit.test_grpo import Tiny
from trainer.grpo import GRPOLossConfig
from trainer.types import Trajectory
from trainer.update import grpo_update


def _traj(reward: float, n_policy: int) -> Trajectory:
    ids = [1, 2, 3, 4, 5, 6]
    mask = [0] * (len(ids) - n_policy) + [1] * n_policy
    return Trajectory(task_id="multi_turn_base_0", token_ids=ids, loss_mask=mask, logprobs=[0.0] * len(ids),
                      reward=reward, correct=False, score=Score("multi_turn_base_0", [False], reward, False),
                      stop_reason="completed", n_generated=n_policy)


def _update(groups):
    model = Tiny()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    return grpo_update(model, opt, groups, loss_cfg=GRPOLossConfig(kl_coef=0.0), micro_batch=2,
                       grad_clip=1.0, pad_id=0, device=torch.device("cpu"))


def test_frac_tokens_nonzero_adv_counts_tokens_not_trajectories():
    spread = [_traj(0.0, 3), _traj(1.0, 1)]  # 4 tokens with a gradient
    flat = [_traj(0.5, 2), _traj(0.5, 4)]  # 6 tokens without (a zero-variance group)
    m = _update([spread, flat])
    assert m["train/frac_tokens_nonzero_adv"] == 0.4
    assert m["update/skipped_zero_adv"] == 2.0
    assert _update([flat])["train/frac_tokens_nonzero_adv"] == 0.0
    assert math.isnan(_update([[_traj(0.0, 0), _traj(1.0, 0)]])["train/frac_tokens_nonzero_adv"])
