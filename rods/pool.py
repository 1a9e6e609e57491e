"""Replay-buffer lifecycle rules (pure): admit, promote, report, retire, sample weights, counts.

A task in the buffer is a `TaskRecord` (frozen, versioned: it is what `rods.store` writes to
Redis beside the task body). States: staged → active → retired (seeds are loaded straight into
active). Every rule below is a pure function of records, a policy step and `PoolRules`; the
stores (`rods.store.memory`, `rods.store.buffer`) only read records, call these, and write the
result atomically.

Rules (docs/ARCHITECTURE.md §6, docs/PAPER.md "Replay buffer"; [D] marks our own decisions):
- Admission: a task id already known in any state is a duplicate (content-hash ids make the same
  synthetic task one task); held-out evaluation ids are refused by the stores.
- Promotion, at an epoch boundary: at most ⌊β · |active|⌋ staged tasks (at least 1 when the
  active pool is empty [D]), never more synthetic active tasks than P_max; best priority first
  (the score of the parent's request at admission), then age (oldest admission first) [D]: ties
  are mostly the variants of one request, and an older task is the one nearer to ageing out.
- Staged queue [D], at a sweep: a staged task waiting more than `staged_max_age` steps is
  retired (`staged_age`: it was made for a policy that has moved on); beyond `staged_cap`
  waiting tasks, those last in promotion order (lowest priority, then newest) are retired
  (`staged_cap`), so the cap never drops a task the next promotion would take first. 0 turns
  either rule off.
- Report: a scored group updates visits, last mean/var, last seen step, and the last k means.
  A report for a step equal to the task's last seen step is a duplicate and ignored [D] (so a
  retry after a lost reply is harmless). Reports of non-active tasks are ignored.
- Retirement at report time: trial (synthetic, first observation, r̄ < 0.20); mastered (recent
  r̄ > `retire_mastered_above`, 0.95); hard (recent r̄ < `retire_hard_below`, 0.20) — not the
  detector's regions (`detector.hard_below`, `detector.mastered_above`), which only label a
  step's mean. "Recent" is the mean of the last k group means and needs `min_obs`
  observations [D]. At a sweep: stale (not observed, or not since promotion, for more
  than `stale_steps`); over-cap (synthetic active > P_max: lowest 4r̄(1−r̄) first, unobserved
  tasks last [D]). Seeds retire only when `seeds_can_retire`.
- Sample weights: uniform (1 each), or boundary-weighted: max(4r̄(1−r̄), floor), unobserved 1.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from rods.boundary import DetectorRules, GroupStats, boundary_score, region_of
from rods.tasks import Task

TaskState = Literal["staged", "active", "retired"]
STATES: tuple[TaskState, ...] = ("active", "staged", "retired")  # export order
RetireReason = Literal[
    "trial", "mastered", "hard", "stale", "over_cap", "staged_cap", "staged_age", "manual"
]
SampleMode = Literal["uniform", "boundary"]
UNSEEN = "unseen"


class PoolRules(BaseModel):
    """Lifecycle knobs (defaults from docs/PAPER.md; [D] where the paper is silent)."""

    model_config = ConfigDict(frozen=True, extra="forbid")  # a misspelt rule is an error
    beta: float = Field(0.20, ge=0.0, le=1.0)  # most promoted per epoch, as a fraction of active
    p_max: int = Field(400, ge=0)  # most synthetic tasks active at once
    trial_below: float = 0.20  # a synthetic task whose first r̄ is below this is dropped
    # retirement thresholds on the recent r̄ (not the detector's regions: `detector` below)
    retire_mastered_above: float = 0.95  # recent r̄ above this retires a task as mastered
    retire_hard_below: float = 0.20  # recent r̄ below this retires a task as hard
    min_obs: int = Field(2, ge=1)  # [D] observations needed before mastered/hard apply
    history_k: int = Field(4, ge=1, le=255)  # group means kept per task; "recent" is their mean
    stale_steps: int = Field(200, ge=1)  # [D] not observed for more steps than this → stale
    seeds_can_retire: bool = False  # seeds stay active forever unless this is set
    sample_mode: SampleMode = "uniform"
    weight_floor: float = Field(0.05, gt=0.0)  # boundary-weighted: least weight of a task
    staged_cap: int = Field(0, ge=0)  # [D] most tasks waiting in staged (0: no cap)
    staged_max_age: int = Field(0, ge=0)  # [D] staged longer than this many steps → retired (0: never)
    detector: DetectorRules = DetectorRules()  # region thresholds used for counts


class TaskRecord(BaseModel):
    """A task's lifecycle state and statistics in the buffer (wire model beside the task body)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    v: Literal[1] = 1
    task_id: str
    category: str
    origin: Literal["seed", "synthetic"]
    generation: int = 0
    state: TaskState
    seq: int = 0  # admission order, unique within a run
    priority: float = 0.0  # promotion order: boundary score of the parent's request
    admitted_step: int = 0
    promoted_step: int | None = None
    retired_step: int | None = None
    retired_reason: RetireReason | None = None
    visits: int = 0
    last_mean: float | None = None
    last_var: float | None = None
    last_seen_step: int | None = None
    history: tuple[float, ...] = ()  # last k group means, oldest first

    @property
    def recent_mean(self) -> float | None:
        return math.fsum(self.history) / len(self.history) if self.history else None


class Report(NamedTuple):
    """One scored group to report: the inputs of `apply_report`. (`boundary.GroupStats` has the
    same fields and is reported as it is.) A named tuple: the trainer reports every step."""

    task_id: str
    reward_mean: float
    reward_var: float


Scored = Report | GroupStats  # what `report` takes: a task id, its group's reward mean and variance
ReportOutcome = Literal["applied", "duplicate", "not_active", "unknown", "unscored"]


# ---------------------------------------------------------------- admission


def new_record(
    task: Task, state: TaskState, seq: int, step: int = 0, priority: float = 0.0
) -> TaskRecord:
    """The record of a task entering the buffer (seeds: active; synthetic: staged)."""
    meta = task.rods
    return TaskRecord(
        task_id=task.id,
        category=task.category,
        origin=meta.origin if meta else "seed",
        generation=meta.generation if meta else 0,
        state=state,
        seq=seq,
        priority=priority,
        admitted_step=step,
        promoted_step=step if state == "active" else None,
    )


# ---------------------------------------------------------------- promotion


def promotion_quota(n_active: int, n_active_synthetic: int, rules: PoolRules) -> int:
    """How many staged tasks may be promoted now: ⌊β·|active|⌋ (≥1 if empty), P_max headroom."""
    by_beta = math.floor(rules.beta * n_active) if n_active else (1 if rules.beta > 0 else 0)
    return max(0, min(by_beta, rules.p_max - n_active_synthetic))


def promotion_key(record: TaskRecord) -> tuple[float, int, str]:
    """Promotion order: best priority first, then oldest admission (then id)."""
    return (-record.priority, record.seq, record.task_id)


def promotion_plan(
    staged: Iterable[TaskRecord], n_active: int, n_active_synthetic: int, rules: PoolRules
) -> list[str]:
    """Ids to promote, in `promotion_key` order, within the quota."""
    quota = promotion_quota(n_active, n_active_synthetic, rules)
    ranked = sorted((r for r in staged if r.state == "staged"), key=promotion_key)
    return [r.task_id for r in ranked[:quota]]


def staged_sweep_plan(
    staged: Sequence[TaskRecord], step: int, rules: PoolRules
) -> list[tuple[str, RetireReason]]:
    """Retirements of waiting tasks: aged out first (admission order), then the excess over
    `staged_cap`, from the end of the promotion order (lowest priority, then newest)."""
    waiting = sorted((r for r in staged if r.state == "staged"), key=lambda r: (r.seq, r.task_id))
    out: list[tuple[str, RetireReason]] = []
    if rules.staged_max_age > 0:
        out = [(r.task_id, "staged_age") for r in waiting if step - r.admitted_step > rules.staged_max_age]
    aged = {t for t, _ in out}
    left = [r for r in waiting if r.task_id not in aged]
    if 0 < rules.staged_cap < len(left):
        ranked = sorted(left, key=promotion_key)
        out.extend((r.task_id, "staged_cap") for r in reversed(ranked[rules.staged_cap :]))
    return out


def promote(record: TaskRecord, step: int) -> TaskRecord:
    return record.model_copy(update={"state": "active", "promoted_step": step})


# ---------------------------------------------------------------- reports and retirement


def report_outcome(record: TaskRecord | None, report: Scored, step: int) -> ReportOutcome:
    if record is None:
        return "unknown"
    if math.isnan(report.reward_mean):
        return "unscored"
    if record.state != "active":
        return "not_active"
    if record.last_seen_step == step:
        return "duplicate"
    return "applied"


def apply_report(record: TaskRecord, report: Scored, step: int, rules: PoolRules) -> TaskRecord:
    """Stats after one scored group (call only when `report_outcome` is `applied`)."""
    last_seen = step if record.last_seen_step is None else max(record.last_seen_step, step)
    return record.model_copy(
        update={
            "visits": record.visits + 1,
            "last_mean": report.reward_mean,
            "last_var": report.reward_var,
            "last_seen_step": last_seen,
            "history": (*record.history, report.reward_mean)[-rules.history_k :],
        }
    )


def retire(record: TaskRecord, reason: RetireReason, step: int) -> TaskRecord:
    return record.model_copy(
        update={"state": "retired", "retired_reason": reason, "retired_step": step}
    )


def may_retire(record: TaskRecord, rules: PoolRules) -> bool:
    return record.state == "active" and (record.origin != "seed" or rules.seeds_can_retire)


def retire_reason_after_report(record: TaskRecord, rules: PoolRules) -> RetireReason | None:
    """Trial, mastered or hard, judged on a record that has just had a report applied."""
    if not may_retire(record, rules) or record.last_mean is None:
        return None
    if record.origin == "synthetic" and record.visits == 1 and record.last_mean < rules.trial_below:
        return "trial"
    recent = record.recent_mean
    if recent is None or len(record.history) < rules.min_obs:
        return None
    if recent > rules.retire_mastered_above:
        return "mastered"
    if recent < rules.retire_hard_below:
        return "hard"
    return None


def is_stale(record: TaskRecord, step: int, rules: PoolRules) -> bool:
    """Not observed (or, if never observed, not since promotion) for more than `stale_steps`."""
    since = record.last_seen_step if record.last_seen_step is not None else record.promoted_step
    since = record.admitted_step if since is None else since
    return step - since > rules.stale_steps


def prune_key(record: TaskRecord) -> tuple[float, int, str]:
    """Over-cap pruning order: lowest 4r̄(1−r̄) first; unobserved last; then oldest admission."""
    score = 2.0 if record.last_mean is None else boundary_score(record.last_mean)
    return (score, record.seq, record.task_id)


def sweep_plan(
    active: Sequence[TaskRecord], step: int, rules: PoolRules
) -> list[tuple[str, RetireReason]]:
    """Retirements of an epoch sweep: stale first, then over-cap pruning of synthetic tasks.

    Deterministic: stale tasks in admission order, pruned ones in `prune_key` order."""
    active = sorted(active, key=lambda r: (r.seq, r.task_id))
    out: list[tuple[str, RetireReason]] = []
    stale: set[str] = set()
    for r in active:
        if may_retire(r, rules) and is_stale(r, step, rules):
            out.append((r.task_id, "stale"))
            stale.add(r.task_id)
    synthetic = [
        r
        for r in active
        if r.state == "active" and r.origin == "synthetic" and r.task_id not in stale
    ]
    excess = len(synthetic) - rules.p_max
    if excess > 0:
        out.extend((r.task_id, "over_cap") for r in sorted(synthetic, key=prune_key)[:excess])
    return out


# ---------------------------------------------------------------- sampling and counts


def sample_weight(record: TaskRecord, mode: SampleMode, floor: float) -> float:
    """Relative sampling weight of an active task (always > 0)."""
    if mode == "uniform" or record.last_mean is None:
        return 1.0
    return boundary_weight(record.last_mean, floor)


def boundary_weight(last_mean: float, floor: float) -> float:
    """Boundary-weighted sampling weight of an observed task: max(4r̄(1−r̄), floor)."""
    return max(boundary_score(last_mean), floor)


def region_label(record: TaskRecord, rules: PoolRules) -> str:
    return UNSEEN if record.last_mean is None else region_of(record.last_mean, rules.detector)


def count_keys(record: TaskRecord, rules: PoolRules) -> tuple[str, ...]:
    """Counter names a record contributes 1 to: `<state>` and `<state>/<dimension>/<value>`."""
    s = record.state
    keys = [
        s,
        f"{s}/origin/{record.origin}",
        f"{s}/category/{record.category}",
        f"{s}/generation/{record.generation}",
        f"{s}/region/{region_label(record, rules)}",
    ]
    if record.retired_reason is not None:
        keys.append(f"{s}/reason/{record.retired_reason}")
    return tuple(keys)


def count_delta(old: TaskRecord | None, new: TaskRecord | None, rules: PoolRules) -> dict[str, int]:
    """Counter increments that turn `old`'s contribution into `new`'s (zeros left out)."""
    delta: dict[str, int] = {}
    for key in count_keys(old, rules) if old else ():
        delta[key] = delta.get(key, 0) - 1
    for key in count_keys(new, rules) if new else ():
        delta[key] = delta.get(key, 0) + 1
    return {k: v for k, v in delta.items() if v}


def count_records(records: Iterable[TaskRecord], rules: PoolRules) -> dict[str, int]:
    """Counters recomputed from scratch (the stores' maintained counters must equal this)."""
    out: dict[str, int] = {}
    for r in records:
        for key in count_keys(r, rules):
            out[key] = out.get(key, 0) + 1
    return out


def pool_metrics(counts: dict[str, int]) -> dict[str, float]:
    """Flat slash-named metrics: `buffer/active`, `buffer/active/origin/synthetic`, …"""
    out = {f"buffer/{state}": 0.0 for state in STATES}
    out.update({f"buffer/{k}": float(v) for k, v in counts.items() if v})
    return out


def nest_counts(counts: dict[str, int]) -> dict[str, dict[str, object]]:
    """Flat counters → per state: `{"active": {"total": 400, "origin": {"seed": 400}, …}}`,
    for every state, with empty dimensions for states that hold nothing."""
    out: dict[str, dict[str, object]] = {s: {"total": counts.get(s, 0)} for s in STATES}
    for key, n in counts.items():
        parts = key.split("/", 2)
        if len(parts) == 3 and parts[0] in out:
            dims = out[parts[0]].setdefault(parts[1], {})
            assert isinstance(dims, dict)  # a dimension's entry is always a dict (only "total" is not)
            dims[parts[2]] = n
    return out
