"""Change sets: what one buffer operation writes, planned purely from the records it read.

Every buffer operation is optimistic compare-and-set: read the records it depends on (as stored),
plan a `ChangeSet` with the pure rules of `rods.pool`, then apply it atomically — in Redis as one
Lua script — only if every record is still byte-for-byte what was read and every guarded counter
still has the value the plan assumed; otherwise re-read and re-plan. The same planners serve the
in-memory and the Redis store, so the two can differ only in reading and applying.

A record is stored in two parts (`encode_record`): its live part — state, origin and statistics,
everything a report reads or writes — in a small binary layout (`LIVE_HEAD`), and the rest
(category, generation, admission, promotion, retirement) as JSON, its details. Compare-and-set
compares both.

A change set also carries its counter deltas (`rods.pool.count_delta`), the new sample weights of
active tasks, the event to append (one per write), and optionally the id of the boundary request
whose output it stores (applied at most once per request id).
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from rods.pool import (
    PoolRules,
    ReportOutcome,
    RetireReason,
    Scored,
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
    staged_sweep_plan,
    sweep_plan,
)
from rods.store.events import STATS_FIELDS, BufferEvent, EventKind, TaskStats
from rods.tasks import Task

Raw = tuple[str, bytes]  # a record as stored: (details JSON, live part)
Read = Mapping[str, tuple[Raw, TaskRecord]]  # task id → (raw, parsed record) as read
SEP = "\x1e"  # ASCII record separator: joins the entries of a list of ids or fields
_LIVE_FIELDS = {"state", "origin", *STATS_FIELDS}

# The live part of a record, binary and little-endian. (It was made binary for a server-side
# report script, since removed; it stays because it is the stored format: `rods.store.migrate`
# converted runs to it. The apply script only compares and copies it, byte for byte.)
#   B  history length n        B  state: a(ctive) s(taged) r(etired)
#   B  origin: s(eed) y (synthetic)    B  flags: 1 last_seen_step, 2 last_mean, 4 last_var present
#   I  visits (uint32)          q  last_seen_step (int64; 0 when absent)
#   d  last_mean   d  last_var (doubles; 0.0 when absent)   then n doubles: the history
LIVE_HEAD = struct.Struct("<BBBBIqdd")
_STATE_CODE: dict[str, int] = {"active": ord("a"), "staged": ord("s"), "retired": ord("r")}
_ORIGIN_CODE: dict[str, int] = {"seed": ord("s"), "synthetic": ord("y")}
_STATES = {v: k for k, v in _STATE_CODE.items()}
_ORIGINS = {v: k for k, v in _ORIGIN_CODE.items()}


@dataclass(frozen=True)
class Change:
    task_id: str
    old_raw: Raw | None  # the record the plan read, as stored; None: must not exist yet
    old: TaskRecord | None
    new: TaskRecord
    body: str | None = None  # task JSON to store (admission only; never overwritten)

    @cached_property
    def new_raw(self) -> Raw:
        return encode_record(self.new)

    @property
    def lifecycle_changed(self) -> bool:
        """Admitted, or more than its statistics changed (state, promotion, retirement)."""
        if self.old is None or self.old_raw is None or self.old.state != self.new.state:
            return True  # (old and old_raw are both set or both None)
        return self.old_raw[0] != self.new_raw[0]


@dataclass(frozen=True)
class ChangeSet:
    changes: tuple[Change, ...] = ()
    guards: tuple[tuple[str, int], ...] = ()  # counters that must still hold these values
    kind: EventKind = "admit"  # the event this write appends
    step: int = 0
    t: float = 0.0  # wall-clock time of planning
    request_id: str | None = None  # apply at most once per boundary request id
    seq_floor: int = 0  # raise the admission counter to at least this (import)

    def event_header(self) -> str:
        return event_header(self.kind, self.step, self.t, self.request_id)

    def event_body(self) -> tuple[str, bytes]:
        """The event's payload fields as stored (`decode_event`): a JSON array of the details
        of the tasks whose lifecycle changed; and every changed task's id and live part, as
        id, part, id, part, … joined by SEP (a live part's length is in its first byte, so a
        SEP byte inside one is never taken for a separator)."""
        details = [c.new_raw[0] for c in self.changes if c.lifecycle_changed]
        live = [x for c in self.changes for x in (c.task_id.encode(), c.new_raw[1])]
        return "[" + ",".join(details) + "]", SEP.encode().join(live)

    def event(self) -> BufferEvent:
        """The event appended with this write (see `rods.store.events`)."""
        return decode_event(self.event_header(), *self.event_body())

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


def event_header(kind: EventKind, step: int, t: float, request_id: str | None = None) -> str:
    """The stored header of an event (`BufferEvent` without its tasks)."""
    return json.dumps({"v": 2, "kind": kind, "step": step, "t": t, "request_id": request_id})


def encode_details(record: TaskRecord) -> str:
    """The record less its live part, as JSON (`retired_step`, `retired_reason` last)."""
    return record.model_dump_json(exclude=_LIVE_FIELDS)


def encode_live(record: TaskRecord) -> bytes:
    """What a report reads and writes: state, origin and statistics (layout: `LIVE_HEAD`)."""
    seen, mean, var, hist = record.last_seen_step, record.last_mean, record.last_var, record.history
    if len(hist) > 255:
        raise ValueError(
            f"task {record.task_id}: a history of more than 255 means cannot be stored"
        )
    flags = (seen is not None) | (mean is not None) << 1 | (var is not None) << 2
    head = LIVE_HEAD.pack(
        len(hist),
        _STATE_CODE[record.state],
        _ORIGIN_CODE[record.origin],
        flags,
        record.visits,
        0 if seen is None else seen,
        0.0 if mean is None else mean,
        0.0 if var is None else var,
    )
    return head + struct.pack(f"<{len(hist)}d", *hist)


def encode_record(record: TaskRecord) -> Raw:
    return encode_details(record), encode_live(record)


def _live_fields(data: bytes, at: int = 0) -> tuple[dict[str, object], int]:
    """The live part starting at `at`: its fields, and where the next one starts."""
    try:
        n, state, origin, flags, visits, seen, mean, var = LIVE_HEAD.unpack_from(data, at)
        start = at + LIVE_HEAD.size
        fields = {
            "state": _STATES[state],
            "origin": _ORIGINS[origin],
            "visits": visits,
            "last_seen_step": seen if flags & 1 else None,
            "last_mean": mean if flags & 2 else None,
            "last_var": var if flags & 4 else None,
            "history": struct.unpack_from(f"<{n}d", data, start),
        }
        return fields, start + 8 * n
    except (struct.error, KeyError):
        raise _bad_live(data[at:]) from None


def _bad_live(data: bytes) -> ValueError:
    return ValueError(
        f"live record part {bytes(data[:40])!r} is not in the layout RODS writes "
        "(rods.store.changes.LIVE_HEAD); was the buffer written by another version or changed "
        "by hand?"
    )


def decode_parts(details: str, live: bytes) -> TaskRecord:
    fields, end = _live_fields(live)
    if end != len(live):
        raise _bad_live(live)
    return TaskRecord.model_validate({**json.loads(details), **fields})


def decode_record(raw: Raw) -> TaskRecord:
    return decode_parts(*raw)


def decode_event(header: str, records: str, live: bytes = b"") -> BufferEvent:
    """An event from its stored fields (header JSON, then `ChangeSet.event_body`)."""
    by_id: dict[str, dict[str, object]] = {}
    at, sep = 0, SEP.encode()
    while at < len(live):
        end = live.index(sep, at)
        by_id[live[at:end].decode()], at = _live_fields(live, end + 1)
        if at < len(live) and live[at : at + 1] != sep:
            raise _bad_live(live[at:])
        at += 1
    full = []
    for details in json.loads(records):
        fields = by_id.pop(details["task_id"], None)  # None: a version 1 event (full records)
        full.append(TaskRecord.model_validate(details if fields is None else details | fields))
    stats = [
        TaskStats(task_id=t, **{f: fields[f] for f in STATS_FIELDS})
        for t, fields in by_id.items()
    ]
    return BufferEvent.model_validate({**json.loads(header), "records": full, "stats": stats})


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
    reports: Sequence[Scored], read: Read, step: int, rules: PoolRules
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


def plan_sweep(active: Read, step: int, rules: PoolRules, staged: Read | None = None) -> ChangeSet:
    """Stale and over-cap retirements of active tasks, and the staged queue's age and cap rules
    (`staged`: the staged records read), guarded on the synthetic-active count they assumed."""
    recs = [rec for _, rec in active.values() if rec.state == "active"]
    targets = sweep_plan(recs, step, rules)
    if staged:
        targets += staged_sweep_plan([rec for _, rec in staged.values()], step, rules)
    cs = plan_retire(targets, {**active, **(staged or {})}, step, kind="sweep")
    n_syn = sum(1 for r in recs if r.origin == "synthetic")
    return ChangeSet(
        cs.changes, guards=(("active/origin/synthetic", n_syn),), kind="sweep", step=step, t=cs.t
    )
