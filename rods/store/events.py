"""The buffer's event log: one `BufferEvent` per buffer write, appended in the same atomic step.

Every admission, import, promotion, report and retirement appends one event to
`rods:<run>:events`. A task the write changed appears in it once: as its full record (after the
change) when its lifecycle changed — admitted, promoted, retired, imported — and otherwise, the
common case of a report, as just its new statistics (`TaskStats`). A report that retired a task
lists that task's full record, with state `retired` and the reason.

The log is enough to rebuild each task's state history (`replay_states`) and the pool's counters
at any point (`replay_counts`, `count_history`), e.g. for a plot of pool evolution or an audit,
as long as it has not been trimmed (the stream is capped at `Settings.events_maxlen` entries).
Events are data only, frozen and versioned (they cross Redis). One event per write rather than
per task keeps a 32-task report to one XADD. Version 1 events (every changed task as a full
record, no `stats`) are still read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Literal

from pydantic import BaseModel, ConfigDict

from rods.pool import PoolRules, TaskRecord, TaskState, count_delta, count_records

EventKind = Literal["admit", "import", "promote", "report", "retire", "sweep"]
STATS_FIELDS = ("visits", "last_mean", "last_var", "last_seen_step", "history")


class TaskStats(BaseModel):
    """The statistics part of a `TaskRecord` (what a report changes), with the task's id."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    task_id: str
    visits: int = 0
    last_mean: float | None = None
    last_var: float | None = None
    last_seen_step: int | None = None
    history: tuple[float, ...] = ()

    def applied_to(self, record: TaskRecord) -> TaskRecord:
        """`record` with these statistics."""
        return record.model_copy(update={f: getattr(self, f) for f in STATS_FIELDS})


class BufferEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    v: Literal[1, 2] = 2
    kind: EventKind
    step: int  # the policy step the write was made at
    t: float  # wall-clock seconds (time.time()) when the write was planned
    request_id: str | None = None  # the boundary request whose output an admission stored
    records: tuple[TaskRecord, ...] = ()  # tasks whose lifecycle changed: full records after it
    stats: tuple[TaskStats, ...] = ()  # the other changed tasks: their statistics after it

    @property
    def task_ids(self) -> list[str]:
        return [r.task_id for r in self.records] + [s.task_id for s in self.stats]


def _apply(
    e: BufferEvent, records: dict[str, TaskRecord]
) -> list[tuple[TaskRecord | None, TaskRecord]]:
    """Apply one event to `records` (the pool so far); returns (record before, record after) of
    each task it changed. Statistics of a task the log never admitted (trimmed away) are skipped."""
    changed: list[tuple[TaskRecord | None, TaskRecord]] = []
    for r in e.records:
        changed.append((records.get(r.task_id), r))
        records[r.task_id] = r
    for s in e.stats:
        old = records.get(s.task_id)
        if old is not None:
            records[s.task_id] = s.applied_to(old)
            changed.append((old, records[s.task_id]))
    return changed


def replay_records(events: Iterable[BufferEvent]) -> dict[str, TaskRecord]:
    """Each task's last record according to the log (the pool as it was after the last event)."""
    records: dict[str, TaskRecord] = {}
    for e in events:
        _apply(e, records)
    return records


def replay_states(events: Iterable[BufferEvent]) -> dict[str, list[TaskState]]:
    """Each task's sequence of states (consecutive repeats collapsed), in log order."""
    out: dict[str, list[TaskState]] = {}
    for e in events:
        for r in e.records:
            seq = out.setdefault(r.task_id, [])
            if not seq or seq[-1] != r.state:
                seq.append(r.state)
    return out


def replay_counts(events: Iterable[BufferEvent], rules: PoolRules) -> dict[str, int]:
    """The pool's counters rebuilt from the log alone."""
    return count_records(replay_records(events).values(), rules)


def count_history(
    events: Iterable[BufferEvent], rules: PoolRules
) -> Iterator[tuple[BufferEvent, dict[str, int]]]:
    """The pool's counters after each event, in log order (for plots of pool evolution)."""
    records: dict[str, TaskRecord] = {}
    counts: dict[str, int] = {}
    for e in events:
        for old, new in _apply(e, records):
            for key, d in count_delta(old, new, rules).items():
                counts[key] = counts.get(key, 0) + d
        yield e, {k: v for k, v in counts.items() if v}
