"""Change sets: what one buffer operation writes, planned purely from the records it read.

Every buffer operation is optimistic compare-and-set: read the records it depends on (as raw JSON),
plan a `ChangeSet` with the pure rules of `rods.pool`, then apply it atomically — in Redis as one
Lua script — only if every record is still byte-for-byte what was read and every guarded counter
still has the value the plan assumed; otherwise re-read and re-plan. The same planners serve the
in-memory and the Redis store, so the two can differ only in reading and applying.

(`report` on Redis runs the same rules in one server-side script instead; see
`rods.store.buffer`.)

A change set also carries its counter deltas (`rods.pool.count_delta`), the new sample weights of
active tasks, the event to append (one per write), and optionally the id of the boundary request
whose output it stores (applied at most once per request id).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from rods.pool import (
    PoolRules,
    Report,
    ReportOutcome,
    RetireReason,
    TaskRecord,
    TaskState,
    apply_report,
    count_delta,
    new_record,
    promote,
    promotion_plan,
    region_label,
    report_outcome,
    retire,
    retire_reason_after_report,
    sample_weight,
    sweep_plan,
)
from rods.store.events import BufferEvent, EventKind
from rods.tasks import Task

Read = Mapping[str, tuple[str, TaskRecord]]  # task id → (raw JSON, parsed record) as read


@dataclass(frozen=True)
class Change:
    task_id: str
    old_raw: str | None  # the record JSON the plan read; None: the task must not exist yet
    old: TaskRecord | None
    new: TaskRecord
    body: str | None = None  # task JSON to store (admission only; never overwritten)

    @cached_property
    def new_raw(self) -> str:
        return encode_record(self.new)


@dataclass(frozen=True)
class ChangeSet:
    changes: tuple[Change, ...] = ()
    guards: tuple[tuple[str, int], ...] = ()  # counters that must still hold these values
    kind: EventKind = "admit"  # the event this write appends
    step: int = 0
    t: float = 0.0  # wall-clock time of planning
    request_id: str | None = None  # apply at most once per boundary request id
    seq_floor: int = 0  # raise the admission counter to at least this (import)

    def event(self) -> BufferEvent:
        """The event appended with this write: every changed record, after the change."""
        return BufferEvent(
            kind=self.kind,
            step=self.step,
            t=self.t,
            request_id=self.request_id,
            records=tuple(c.new for c in self.changes),
        )

    def deltas(self, rules: PoolRules) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.changes:
            if c.old is not None and _same_counters(c.old, c.new, rules):
                continue  # the common report: same state, same region
            for k, v in count_delta(c.old, c.new, rules).items():
                out[k] = out.get(k, 0) + v
        return {k: v for k, v in out.items() if v}

    def weights(self, rules: PoolRules) -> dict[str, float]:
        """Sample weight of every changed task that is active afterwards."""
        return {
            c.task_id: sample_weight(c.new, "boundary", rules.weight_floor)
            for c in self.changes
            if c.new.state == "active"
        }


@dataclass(frozen=True)
class AdmitResult:
    admitted: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)  # task id → reason
    already_done: bool = False  # the request id had been stored before; nothing was written


@dataclass(frozen=True)
class ReportResult:
    outcomes: dict[str, ReportOutcome] = field(default_factory=dict)
    retired: list[tuple[str, RetireReason]] = field(default_factory=list)

    @property
    def applied(self) -> int:
        return sum(1 for o in self.outcomes.values() if o == "applied")


def _same_counters(old: TaskRecord, new: TaskRecord, rules: PoolRules) -> bool:
    """Fast path of `count_delta(old, new) == {}` (the fields `count_keys` reads are equal)."""
    return (
        old.state == new.state
        and old.retired_reason == new.retired_reason
        and old.origin == new.origin
        and old.category == new.category
        and old.generation == new.generation
        and region_label(old, rules) == region_label(new, rules)
    )


def encode_record(record: TaskRecord) -> str:
    return record.model_dump_json()


def decode_record(raw: str) -> TaskRecord:
    return TaskRecord.model_validate_json(raw)


def encode_task(task: Task) -> str:
    """The stored body: the task's BFCL JSON (with its lineage block), compact."""
    return json.dumps(task.to_bfcl(), ensure_ascii=False, separators=(",", ":"))


def decode_task(raw: str) -> Task:
    return Task.model_validate_json(raw)


def plan_admit(
    tasks: Sequence[Task],
    read: Read,
    state: TaskState,
    first_seq: int,
    step: int,
    priority: float = 0.0,
    request_id: str | None = None,
) -> tuple[ChangeSet, AdmitResult]:
    """New records for tasks not yet known (in any state); known ids are duplicates."""
    changes: list[Change] = []
    duplicates: list[str] = []
    seen: set[str] = set()
    for task in tasks:
        if task.id in read or task.id in seen:
            duplicates.append(task.id)
            continue
        seen.add(task.id)
        rec = new_record(task, state, seq=first_seq + len(changes), step=step, priority=priority)
        changes.append(Change(task.id, None, None, rec, body=encode_task(task)))
    cs = ChangeSet(tuple(changes), kind="admit", step=step, t=time.time(), request_id=request_id)
    return cs, AdmitResult(admitted=[c.task_id for c in changes], duplicates=duplicates)


def plan_import(
    items: Sequence[tuple[Task, TaskRecord]], read: Read
) -> tuple[ChangeSet, AdmitResult]:
    """Restore exported tasks with their records; ids already known are duplicates."""
    changes: list[Change] = []
    duplicates: list[str] = []
    seen: set[str] = set()
    for task, rec in items:
        if task.id in read or task.id in seen:
            duplicates.append(task.id)
            continue
        seen.add(task.id)
        changes.append(Change(task.id, None, None, rec, body=encode_task(task)))
    seq_floor = max((c.new.seq for c in changes), default=0)
    step = max((c.new.admitted_step for c in changes), default=0)
    cs = ChangeSet(tuple(changes), kind="import", step=step, t=time.time(), seq_floor=seq_floor)
    return cs, AdmitResult(admitted=[c.task_id for c in changes], duplicates=duplicates)


def plan_promote(staged: Read, counts: Mapping[str, int], step: int, rules: PoolRules) -> ChangeSet:
    """Promote the best staged tasks within β and P_max; guarded on the counts it relied on."""
    n_active = counts.get("active", 0)
    n_syn = counts.get("active/origin/synthetic", 0)
    ids = promotion_plan((rec for _, rec in staged.values()), n_active, n_syn, rules)
    changes = []
    for task_id in ids:
        raw, rec = staged[task_id]
        changes.append(Change(task_id, raw, rec, promote(rec, step)))
    guards = (("active", n_active), ("active/origin/synthetic", n_syn))
    return ChangeSet(tuple(changes), guards=guards, kind="promote", step=step, t=time.time())


def plan_report(
    reports: Sequence[Report], read: Read, step: int, rules: PoolRules
) -> tuple[ChangeSet, ReportResult]:
    """Apply scored groups to active tasks, then the report-time retirements (one event: the
    final records, retired ones with their reason)."""
    now: dict[str, TaskRecord] = {}  # id → record after the reports so far, in report order
    outcomes: dict[str, ReportOutcome] = {}
    retired: list[tuple[str, RetireReason]] = []
    for rep in reports:
        got = read.get(rep.task_id)
        current = now.get(rep.task_id, got[1] if got else None)
        outcome = report_outcome(current, rep, step)
        if rep.task_id not in outcomes or outcome == "applied":
            outcomes[rep.task_id] = outcome
        if outcome != "applied" or current is None:
            continue
        new = apply_report(current, rep, step, rules)
        reason = retire_reason_after_report(new, rules)
        if reason is not None:
            new = retire(new, reason, step)
            retired.append((rep.task_id, reason))
        now[rep.task_id] = new
    changes = tuple(Change(tid, read[tid][0], read[tid][1], new) for tid, new in now.items())
    cs = ChangeSet(changes, kind="report", step=step, t=time.time())
    return cs, ReportResult(outcomes, retired)


def plan_retire(
    targets: Sequence[tuple[str, RetireReason]], read: Read, step: int, kind: EventKind = "retire"
) -> ChangeSet:
    """Retire the given tasks that are currently staged or active."""
    changes = []
    seen: set[str] = set()
    for task_id, reason in targets:
        if task_id not in read or task_id in seen:
            continue
        seen.add(task_id)
        raw, rec = read[task_id]
        if rec.state != "retired":
            changes.append(Change(task_id, raw, rec, retire(rec, reason, step)))
    return ChangeSet(tuple(changes), kind=kind, step=step, t=time.time())


def plan_sweep(active: Read, step: int, rules: PoolRules) -> ChangeSet:
    """Stale and over-cap retirements, guarded on the synthetic-active count they assumed."""
    recs = [rec for _, rec in active.values() if rec.state == "active"]
    cs = plan_retire(sweep_plan(recs, step, rules), active, step, kind="sweep")
    n_syn = sum(1 for r in recs if r.origin == "synthetic")
    return ChangeSet(
        cs.changes, guards=(("active/origin/synthetic", n_syn),), kind="sweep", step=step, t=cs.t
    )
