"""In-memory replay buffer: the same contract as the Redis store, for unit tests and dry runs.

Thread-safe (one lock around every primitive); not shared between processes. Records are kept as
stored in Redis (details JSON, live bytes), so compare-and-set behaves the same way.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

from rods.pool import PoolRules, TaskState
from rods.store.changes import ChangeSet, Raw, Read, decode_record
from rods.store.contract import ApplyStatus, ReplayBuffer
from rods.store.events import BufferEvent
from rods.store.keys import check_run


class MemoryBuffer(ReplayBuffer):
    def __init__(self, run: str = "memory", rules: PoolRules | None = None) -> None:
        import threading

        super().__init__(check_run(run), rules)
        self._lock = threading.Lock()
        self._records: dict[str, Raw] = {}
        self._bodies_by_id: dict[str, str] = {}
        self._states: dict[TaskState, dict[str, float]] = {
            "staged": {},
            "active": {},
            "retired": {},
        }
        self._counts: dict[str, int] = {}
        self._events: list[BufferEvent] = []
        self._done: set[str] = set()
        self._seq = 0

    def _read(self, task_ids: Iterable[str]) -> Read:
        with self._lock:
            raws = {t: self._records[t] for t in set(task_ids) if t in self._records}
        return {t: (raw, decode_record(raw)) for t, raw in raws.items()}

    def _ids(self, state: TaskState) -> list[str]:
        with self._lock:
            return list(self._states[state])

    def _active_weights(self) -> list[tuple[str, float]]:
        with self._lock:
            return list(self._states["active"].items())

    def _random_active(self, n: int) -> list[str]:
        with self._lock:
            ids = list(self._states["active"])
        return random.sample(ids, min(n, len(ids)))

    def _bodies(self, task_ids: Sequence[str]) -> list[str | None]:
        with self._lock:
            return [self._bodies_by_id.get(t) for t in task_ids]

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {k: v for k, v in self._counts.items() if v}

    def _reserve_seq(self, n: int) -> int:
        with self._lock:
            first = self._seq + 1
            self._seq += n
            return first

    def _apply(self, cs: ChangeSet) -> ApplyStatus:
        with self._lock:
            if cs.request_id and cs.request_id in self._done:
                return "done"
            for c in cs.changes:
                if self._records.get(c.task_id) != c.old_raw:
                    return "conflict"
            for key, expected in cs.guards:
                if self._counts.get(key, 0) != expected:
                    return "conflict"
            weights = cs.weights(self.rules)
            for c in cs.changes:
                self._records[c.task_id] = c.new_raw
                if c.body is not None:
                    self._bodies_by_id.setdefault(c.task_id, c.body)
                for members in self._states.values():
                    members.pop(c.task_id, None)
                self._states[c.new.state][c.task_id] = weights.get(c.task_id, 0.0)
            for key, d in cs.deltas(self.rules).items():
                self._counts[key] = self._counts.get(key, 0) + d
            if cs.changes:  # as in Redis: a write that changed no task appends no event
                self._events.append(cs.event())
            if cs.request_id:
                self._done.add(cs.request_id)
            self._seq = max(self._seq, cs.seq_floor)
            return "ok"

    def events(self, count: int | None = None) -> list[BufferEvent]:
        with self._lock:
            return list(self._events[:count] if count is not None else self._events)

    def is_request_done(self, request_id: str) -> bool:
        with self._lock:
            return request_id in self._done
