"""Boundary detection: group rewards → region, and which boundary tasks to publish (pure).

What lives here (no I/O, no clock; the one random draw, of the uniform arm, is seeded):
- `group_stats`: the G progress rewards of one task's rollouts → mean r̄, variance, region.
  Unscorable rollouts carry NaN rewards (a bad rollout is data): they are left out of the mean and
  counted in `n_unscored`; a group with no finite reward has region `unscored` and is never
  selected or reported as evidence.
- `region_of`: hard r̄ < 0.20 ≤ boundary ≤ 0.85 < mastered (thresholds configurable).
- `boundary_score`: 4·r̄(1−r̄), the Popoviciu bound on the variance of a [0, 1] reward, scaled
  to [0, 1]; it peaks at r̄ = 0.5.
- `select_requests`: the step's boundary tasks *with spread* (observed variance > `min_var`),
  ranked by the observed variance (ties: mean closer to 0.5, then task id), at most `budget` per
  step and `category_quota` per category, skipping tasks requested within the last
  `cooldown_steps` steps. The region is the paper's (by mean), but the mean only bounds the
  variance (Popoviciu); a group with no spread — sixteen 0.5s, or a policy that never calls a
  tool scoring the empty turns of a miss_func task — gives GRPO no gradient whatever its mean,
  so it is never requested (it is counted in `boundary/zero_var_in_band`).
- `select_uniform_requests`: the `uniform` control arm: the same number of requests, under the
  same budget, quota and cooldown, for tasks of the step's batch drawn uniformly at random
  (any region, spread or not) instead of the boundary tasks.
- `BoundaryRequest`: the frozen, versioned wire model published on the boundary stream. Its
  `request_id` is a pure function of (task_id, policy_step), so a retried publish of the same
  request is recognised as a duplicate.
- `boundary_metrics`: flat slash-named metrics of one step's groups.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rods.tasks import Signature, category_of

Region = Literal["hard", "boundary", "mastered"]
REGIONS: tuple[Region, ...] = ("hard", "boundary", "mastered")
UNSCORED = "unscored"


class DetectorRules(BaseModel):
    """Thresholds and per-step caps of the detector (docs/PAPER.md "Detector"; caps are [D])."""

    model_config = ConfigDict(frozen=True)
    hard_below: float = 0.20  # r̄ below this is hard
    mastered_above: float = 0.85  # r̄ above this is mastered; in between (inclusive) is boundary
    budget: int = Field(16, ge=0)  # M: most requests published per policy step
    category_quota: int = Field(4, ge=0)  # most requests per task category per step
    cooldown_steps: int = Field(10, ge=0)  # a task requested at step s is skipped until s + this
    n_variants: int = Field(1, ge=1)  # variants asked of the synthesizer per request
    # ε: a group whose observed variance is not above this has no spread (no GRPO gradient)
    min_var: float = Field(1e-6, ge=0.0)

    def model_post_init(self, __context: object) -> None:
        if not 0.0 <= self.hard_below <= self.mastered_above <= 1.0:
            raise ValueError(
                f"need 0 <= hard_below <= mastered_above <= 1, got "
                f"{self.hard_below} and {self.mastered_above}"
            )


DEFAULT_RULES = DetectorRules()


class GroupStats(BaseModel):
    """What one task's rollout group says about it at one policy step."""

    model_config = ConfigDict(frozen=True)
    task_id: str
    reward_mean: float  # NaN when no rollout was scorable
    reward_var: float  # population variance of the finite rewards; NaN when none
    group_size: int  # G, rollouts in the group (scored or not)
    n_unscored: int = 0  # rollouts whose reward was NaN
    region: str  # one of REGIONS, or UNSCORED

    @property
    def scored(self) -> bool:
        return self.region != UNSCORED

    @property
    def category(self) -> str:
        return category_of(self.task_id)


class BoundaryRequest(BaseModel):
    """A boundary task sent to synthesis (docs/ARCHITECTURE.md §4). Wire model: data only, versioned."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    v: Literal[1] = 1
    request_id: str
    task_id: str
    category: str
    policy_step: int
    reward_mean: float
    reward_var: float
    group_size: int
    n_variants: int
    target_signature: Signature | None = None

    @property
    def score(self) -> float:
        """4·s², the observed variance scaled to [0, 1] (the detector's ranking; the priority
        of the request's variants in the staged queue)."""
        return 4.0 * self.reward_var


def request_id_for(task_id: str, policy_step: int) -> str:
    """Deterministic id of the request for `task_id` at `policy_step` (readable on purpose)."""
    return f"{task_id}@{policy_step}"


def boundary_score(reward_mean: float) -> float:
    """4·r̄(1−r̄) ∈ [0, 1]; NaN in, NaN out."""
    return 4.0 * reward_mean * (1.0 - reward_mean)


def region_of(reward_mean: float, rules: DetectorRules = DEFAULT_RULES) -> str:
    """hard | boundary | mastered; `unscored` for NaN."""
    if math.isnan(reward_mean):
        return UNSCORED
    if reward_mean < rules.hard_below:
        return "hard"
    if reward_mean > rules.mastered_above:
        return "mastered"
    return "boundary"


def group_stats(
    task_id: str, rewards_G: Sequence[float], rules: DetectorRules = DEFAULT_RULES
) -> GroupStats:
    """Mean, population variance and region of one group; NaN rewards are left out and counted."""
    finite_G = [float(r) for r in rewards_G if not math.isnan(float(r))]
    if finite_G:
        mean = math.fsum(finite_G) / len(finite_G)
        var = math.fsum((r - mean) ** 2 for r in finite_G) / len(finite_G)
    else:
        mean = var = math.nan
    return GroupStats(
        task_id=task_id,
        reward_mean=mean,
        reward_var=var,
        group_size=len(rewards_G),
        n_unscored=len(rewards_G) - len(finite_G),
        region=region_of(mean, rules),
    )


def in_cooldown(
    task_id: str, policy_step: int, last_requested: Mapping[str, int], cooldown: int
) -> bool:
    """True when the task was requested fewer than `cooldown` steps before `policy_step`."""
    last = last_requested.get(task_id)
    return last is not None and policy_step - last < cooldown


def has_spread(s: GroupStats, rules: DetectorRules = DEFAULT_RULES) -> bool:
    """True when the group's observed variance is above ε (NaN variance: no)."""
    return s.reward_var > rules.min_var


def rank_key(s: GroupStats) -> tuple[float, float, str]:
    """Request order: higher observed variance first, then mean closer to 0.5, then task id."""
    return (-s.reward_var, -boundary_score(s.reward_mean), s.task_id)


def _first_groups(stats_B: Sequence[GroupStats]) -> list[GroupStats]:
    seen: set[str] = set()
    out: list[GroupStats] = []
    for s in stats_B:
        if s.task_id not in seen:
            seen.add(s.task_id)
            out.append(s)
    return out


def _take(
    ranked: Sequence[GroupStats],
    n: int,
    policy_step: int,
    rules: DetectorRules,
    signatures: Mapping[str, Signature] | None,
) -> list[BoundaryRequest]:
    """The first `n` of `ranked` that fit the per-category quota, as requests."""
    per_category: dict[str, int] = {}
    out: list[BoundaryRequest] = []
    for s in ranked:
        if len(out) >= n:
            break
        cat = s.category
        if per_category.get(cat, 0) >= rules.category_quota:
            continue
        per_category[cat] = per_category.get(cat, 0) + 1
        out.append(
            BoundaryRequest(
                request_id=request_id_for(s.task_id, policy_step),
                task_id=s.task_id,
                category=cat,
                policy_step=policy_step,
                reward_mean=s.reward_mean,
                reward_var=s.reward_var,
                group_size=s.group_size,
                n_variants=rules.n_variants,
                target_signature=(signatures or {}).get(s.task_id),
            )
        )
    return out


def select_requests(
    stats_B: Sequence[GroupStats],
    policy_step: int,
    last_requested: Mapping[str, int],
    rules: DetectorRules = DEFAULT_RULES,
    signatures: Mapping[str, Signature] | None = None,
) -> list[BoundaryRequest]:
    """The step's requests: boundary groups with spread, most variance first, within budget,
    quota and cooldown.

    Invariants (property-tested): every request's task is in the boundary region, scored, has
    observed variance > `min_var`, is not in cooldown; at most `budget` requests, at most
    `category_quota` per category, one per task; the result is deterministic and sorted by
    `rank_key`. A task appearing twice in `stats_B` is considered once (its first group).
    """
    candidates = [
        s
        for s in _first_groups(stats_B)
        if s.region == "boundary"
        and has_spread(s, rules)
        and not in_cooldown(s.task_id, policy_step, last_requested, rules.cooldown_steps)
    ]
    return _take(sorted(candidates, key=rank_key), rules.budget, policy_step, rules, signatures)


def select_uniform_requests(
    stats_B: Sequence[GroupStats],
    policy_step: int,
    last_requested: Mapping[str, int],
    n: int,
    seed: int,
    rules: DetectorRules = DEFAULT_RULES,
    signatures: Mapping[str, Signature] | None = None,
) -> list[BoundaryRequest]:
    """The `uniform` arm: up to `n` requests (the count `select_requests` gave at this step) for
    scored tasks of the batch drawn uniformly at random, with the same budget, quota and cooldown.

    The batch is itself a uniform draw from the active pool (the trainer's sampler), so a uniform
    draw from it is a uniform draw from the pool — among tasks whose group stats exist. The draw
    is a pure function of (`seed`, `policy_step`, the batch's task ids), whatever their order.
    """
    candidates = sorted(
        (
            s
            for s in _first_groups(stats_B)
            if s.scored
            and not in_cooldown(s.task_id, policy_step, last_requested, rules.cooldown_steps)
        ),
        key=lambda s: s.task_id,
    )
    random.Random(f"uniform/{seed}/{policy_step}").shuffle(candidates)
    return _take(candidates, min(n, rules.budget), policy_step, rules, signatures)


def boundary_metrics(
    stats_B: Sequence[GroupStats],
    n_requests: int | None = None,
    rules: DetectorRules = DEFAULT_RULES,
) -> dict[str, float]:
    """Flat metrics of one step: region fractions, mean variance per region, groups without
    spread (`frac_zero_var` of all scored groups; `zero_var_in_band`: boundary-region groups
    with no spread, which the detector does not request), requests published."""
    scored_B = [s for s in stats_B if s.scored]
    n = len(scored_B)
    flat = [s for s in scored_B if not has_spread(s, rules)]
    out: dict[str, float] = {
        "boundary/groups": float(len(stats_B)),
        "boundary/unscored_groups": float(len(stats_B) - n),
        "boundary/frac_zero_var": len(flat) / n if n else math.nan,
        "boundary/zero_var_in_band": float(sum(1 for s in flat if s.region == "boundary")),
    }
    for region in REGIONS:
        in_region = [s for s in scored_B if s.region == region]
        out[f"boundary/frac_{region}"] = len(in_region) / n if n else math.nan
        out[f"boundary/var_{region}"] = (
            math.fsum(s.reward_var for s in in_region) / len(in_region) if in_region else math.nan
        )
    if n_requests is not None:
        out["boundary/requests"] = float(n_requests)
    return out
