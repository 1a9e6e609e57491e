"""The buffer's event log: one `BufferEvent` per buffer write, appended in the same atomic step.

Every admission, import, promotion, report and retirement appends one event to
`rods:<run>:events` holding the full records of the tasks it changed, as they were after the
change (a report that retired a task lists it with state `retired` and its reason). The log is
enough to rebuild each task's state history (`replay_states`) and the pool's counters at any
point (`replay_counts`, `count_history`), e.g. for a plot of pool evolution or an audit, as long
as it has not been trimmed (the stream is capped at `Settings.events_maxlen` entries). Events are
data only, frozen and versioned (they cross Redis). One event per write rather than per task
keeps a 32-task report to one XADD.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Literal

from pydantic import BaseModel, ConfigDict

from rods.pool import PoolRules, TaskRecord, TaskState, count_delta, count_records

EventKind = Literal["admit", "import", "promote", "report", "retire", "sweep"]


class BufferEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    v: Literal[1] = 1
    kind: EventKind
    step: int  # the policy step the write was made at
    t: float  # wall-clock seconds (time.time()) when the write was planned
    request_id: str | None = None  # the boundary request whose output an admission stored
    records: tuple[TaskRecord, ...]  # the changed tasks' records after the write

    @property
    def task_ids(self) -> list[str]:
        return [r.task_id for r in self.records]


def replay_records(events: Iterable[BufferEvent]) -> dict[str, TaskRecord]:
    """Each task's last record according to the log (the pool as it was after the last event)."""
    out: dict[str, TaskRecord] = {}
    for e in events:
        for r in e.records:
            out[r.task_id] = r
    return out


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
        for r in e.records:
            for key, d in count_delta(records.get(r.task_id), r, rules).items():
                counts[key] = counts.get(key, 0) + d
            records[r.task_id] = r
        yield e, {k: v for k, v in counts.items() if v}
