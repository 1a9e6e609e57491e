"""The replay-buffer contract: one abstract class; its operations are written once over primitives.

`ReplayBuffer` holds the operations the trainer, the synthesis workers and the CLI use (load
seeds, admit staged tasks, promote, report group stats, retire, sample, snapshot counts, read the
event log, export/import). Each is: read records → plan a `ChangeSet` with the pure rules → apply
it atomically with compare-and-set (re-plan on conflict, at most `max_attempts` times). Stores
implement only the primitives: `rods.store.memory.MemoryBuffer` (unit tests) and
`rods.store.buffer.RedisBuffer` (Lua script). `tests/integration/test_buffer_contract.py` runs the
same suite on both.

Guarantees: a task id is stored once (admitting it again, in any state, is a duplicate); the
state sets and counters always agree with the records (they change in the same atomic step);
every write that changes tasks appends one event listing them as they are after it; a boundary
request's output is stored at most once (`request_id`); sampling is without replacement from the
active pool, and with the same `rng` state gives the same ids on every store.

`report` is the hot write path (every training step): a store may replace the generic
read → plan → compare-and-set loop by a faster one with the same result (`_report`); the Redis
store applies the rules in one server-side script per call, atomically, without a read round
trip or conflicts.

Client-side cache (per `ReplayBuffer` object): parsed task bodies (immutable once stored, so
always coherent; the returned `Task`s are shared — treat them as read-only).
"""

from __future__ import annotations

import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, TypeVar

import numpy as np

from rods.pool import (
    STATES,
    PoolRules,
    RetireReason,
    SampleMode,
    Scored,
    TaskRecord,
    TaskState,
    nest_counts,
    pool_metrics,
)
from rods.store.changes import (
    AdmitResult,
    ChangeSet,
    Read,
    ReportResult,
    decode_task,
    plan_admit,
    plan_import,
    plan_promote,
    plan_report,
    plan_retire,
    plan_sweep,
)
from rods.store.events import BufferEvent
from rods.tasks import RodsMeta, Task, is_eval_task

ApplyStatus = Literal["ok", "conflict", "done"]
R = TypeVar("R")
BUFFER_BLOCK = "buffer"  # key of the lifecycle block inside an exported task's `rods` block
_LINEAGE_FIELDS = {"v", "task_id", "category", "origin", "generation"}


class BufferConflict(RuntimeError):
    """An operation kept losing compare-and-set races (more than `max_attempts` re-plans)."""


class ReplayBuffer(ABC):
    def __init__(self, run: str, rules: PoolRules | None = None, max_attempts: int = 200) -> None:
        self.run = run
        self.rules = rules or PoolRules()
        self.max_attempts = max_attempts
        self.conflicts = 0  # compare-and-set conflicts this client re-planned after (a metric)
        # Parsed task bodies by id. Bodies are written once and never change, so this cache is
        # always coherent; it saves parsing the same tasks every step (the trainer samples the
        # same ~800 tasks over and over).
        self._task_cache: dict[str, Task] = {}
        self.task_cache_size = 8192  # 0 disables the cache

    # ------------------------------------------------------------ primitives (per store)

    @abstractmethod
    def _read(self, task_ids: Iterable[str]) -> Read:
        """Records of the ids that exist, with their raw JSON."""

    @abstractmethod
    def _ids(self, state: TaskState) -> list[str]:
        """Ids currently in one state (any order)."""

    @abstractmethod
    def _active_weights(self) -> list[tuple[str, float]]:
        """(id, boundary sample weight) of every active task (any order)."""

    @abstractmethod
    def _random_active(self, n: int) -> list[str]:
        """Up to n distinct active ids drawn uniformly by the store (unseeded, one round trip)."""

    @abstractmethod
    def _bodies(self, task_ids: Sequence[str]) -> list[str | None]:
        """Stored task JSON per id (None where unknown)."""

    @abstractmethod
    def counts(self) -> dict[str, int]:
        """Maintained counters (`rods.pool.count_keys`), zeros left out."""

    @abstractmethod
    def _reserve_seq(self, n: int) -> int:
        """Reserve n admission numbers; returns the first."""

    @abstractmethod
    def _apply(self, cs: ChangeSet) -> ApplyStatus:
        """Apply atomically iff records and guards are as planned; `done` if the request was."""

    @abstractmethod
    def events(self, count: int | None = None) -> list[BufferEvent]:
        """The event log, oldest first (the first `count` events when given)."""

    @abstractmethod
    def is_request_done(self, request_id: str) -> bool:
        """Whether the output of this boundary request has been stored."""

    # ------------------------------------------------------------ the commit loop

    def _commit(self, plan: Callable[[], tuple[ChangeSet, R]]) -> tuple[ApplyStatus, R]:
        for attempt in range(self.max_attempts):
            cs, result = plan()
            if not cs.changes and not cs.request_id:
                return "ok", result
            status = self._apply(cs)
            if status != "conflict":
                return status, result
            self.conflicts += 1
            time.sleep(random.uniform(0, 0.0005 * min(attempt + 1, 20)))  # de-synchronise racers
        raise BufferConflict(
            f"run {self.run}: gave up after {self.max_attempts} conflicting attempts"
        )

    # ------------------------------------------------------------ admission

    def load_seeds(self, tasks: Sequence[Task], step: int = 0) -> AdmitResult:
        """Seeds go straight to active. Held-out evaluation ids and synthetic tasks are refused."""
        rejected = {t.id: _seed_rejection(t) for t in tasks if _seed_rejection(t)}
        ok = [t for t in tasks if t.id not in rejected]
        res = self._admit(ok, "active", step, 0.0, None)
        return AdmitResult(
            res.admitted, res.duplicates, {**rejected, **res.rejected}, res.already_done
        )

    def add_staged(
        self,
        tasks: Sequence[Task],
        step: int = 0,
        priority: float = 0.0,
        request_id: str | None = None,
    ) -> AdmitResult:
        """Validated synthetic tasks wait in staged. With `request_id`, stored at most once."""
        rejected = {t.id: _staged_rejection(t) for t in tasks if _staged_rejection(t)}
        ok = [t for t in tasks if t.id not in rejected]
        res = self._admit(ok, "staged", step, priority, request_id)
        return AdmitResult(
            res.admitted, res.duplicates, {**rejected, **res.rejected}, res.already_done
        )

    def _admit(
        self,
        tasks: Sequence[Task],
        state: TaskState,
        step: int,
        priority: float,
        request_id: str | None,
    ) -> AdmitResult:
        first_seq = self._reserve_seq(len(tasks)) if tasks else 0

        def plan() -> tuple[ChangeSet, AdmitResult]:
            read = self._read(t.id for t in tasks)
            return plan_admit(tasks, read, state, first_seq, step, priority, request_id)

        status, res = self._commit(plan)
        if status == "done":
            return AdmitResult(duplicates=[t.id for t in tasks], already_done=True)
        return res

    # ------------------------------------------------------------ lifecycle

    def promote(self, step: int) -> list[str]:
        """Epoch boundary: move the best staged tasks to active (β, P_max). Returns their ids."""

        def plan() -> tuple[ChangeSet, list[str]]:
            counts = self.counts()
            cs = plan_promote(self._read(self._ids("staged")), counts, step, self.rules)
            return cs, [c.task_id for c in cs.changes]

        return self._commit(plan)[1]

    def report(self, groups: Sequence[Scored], step: int) -> ReportResult:
        """One step's group stats (`Report`s or the detector's `GroupStats`, which carry the same
        fields); applies report-time retirements (trial, mastered, hard)."""
        return self._report(groups, step)

    def _report(self, reports: Sequence[Scored], step: int) -> ReportResult:
        """The generic report path: read the records, plan with `rods.pool`, compare-and-set.
        A store may override it with a faster path that must give the same result (the Redis
        store runs the rules in one server-side script; a test holds the two to agreement)."""
        ids = {r.task_id for r in reports}

        def plan() -> tuple[ChangeSet, ReportResult]:
            return plan_report(reports, self._read(ids), step, self.rules)

        return self._commit(plan)[1]

    def sweep(self, step: int) -> list[tuple[str, RetireReason]]:
        """Stale and over-cap retirements, and the staged queue's age and cap (run at an epoch
        boundary, before `promote`)."""

        def plan() -> tuple[ChangeSet, list[tuple[str, RetireReason]]]:
            queue_rules = self.rules.staged_cap > 0 or self.rules.staged_max_age > 0
            staged = self._read(self._ids("staged")) if queue_rules else None
            cs = plan_sweep(self._read(self._ids("active")), step, self.rules, staged)
            return cs, [(c.task_id, c.new.retired_reason or "manual") for c in cs.changes]

        return self._commit(plan)[1]

    def end_epoch(self, step: int) -> tuple[list[tuple[str, RetireReason]], list[str]]:
        """Sweep, then promote: (retired, promoted)."""
        return self.sweep(step), self.promote(step)

    def retire(
        self, task_ids: Sequence[str], step: int, reason: RetireReason = "manual"
    ) -> list[str]:
        """Retire staged or active tasks by hand (seeds included). Returns the ids retired."""

        def plan() -> tuple[ChangeSet, list[str]]:
            cs = plan_retire([(t, reason) for t in task_ids], self._read(task_ids), step)
            return cs, [c.task_id for c in cs.changes]

        return self._commit(plan)[1]

    # ------------------------------------------------------------ reading

    def sample_ids(
        self, n: int, rng: np.random.Generator | int | None = None, mode: SampleMode | None = None
    ) -> list[str]:
        """Up to n distinct active ids; uniform or boundary-weighted (default: `rules.sample_mode`).

        Without `rng`, uniform sampling is drawn by the store (fast, not reproducible); with it,
        the draw is client-side over the active ids sorted, identical on every store.
        """
        mode = mode or self.rules.sample_mode
        if n <= 0:
            return []
        if mode == "uniform" and rng is None:
            return self._random_active(n)
        pairs = sorted(self._active_weights())
        if not pairs:
            return []
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        k = min(n, len(pairs))
        if mode == "uniform":
            idx = gen.choice(len(pairs), size=k, replace=False)
        else:
            w = np.array([w for _, w in pairs], dtype=np.float64)
            idx = gen.choice(len(pairs), size=k, replace=False, p=w / w.sum())
        return [pairs[i][0] for i in idx]

    def sample(
        self, n: int, rng: np.random.Generator | int | None = None, mode: SampleMode | None = None
    ) -> list[Task]:
        return self.get_tasks(self.sample_ids(n, rng, mode))

    def get_tasks(self, task_ids: Sequence[str]) -> list[Task]:
        """Task bodies (as admitted, lineage block included); unknown ids raise KeyError.

        The returned `Task`s are shared with a client-side cache: treat them as read-only
        (`model_copy(deep=True)` before changing one)."""
        cache = self._task_cache
        to_fetch = [t for t in dict.fromkeys(task_ids) if t not in cache]
        fetched: dict[str, Task] = {}
        if to_fetch:
            bodies = self._bodies(to_fetch)
            missing = [t for t, b in zip(to_fetch, bodies, strict=True) if b is None]
            if missing:
                raise KeyError(f"run {self.run}: unknown task ids {missing[:5]}")
            fetched = {t: decode_task(b) for t, b in zip(to_fetch, bodies, strict=True) if b}
            if self.task_cache_size > 0:
                if len(cache) + len(fetched) > self.task_cache_size:
                    cache.clear()
                cache.update(fetched)
        return [fetched[t] if t in fetched else cache[t] for t in task_ids]

    def get_record(self, task_id: str) -> TaskRecord | None:
        got = self._read([task_id]).get(task_id)
        return got[1] if got else None

    def records(self, states: Iterable[TaskState] = STATES) -> list[TaskRecord]:
        """Records in the given states, by state order then admission order."""
        out: list[TaskRecord] = []
        for state in states:
            recs = [rec for _, rec in self._read(self._ids(state)).values() if rec.state == state]
            out.extend(sorted(recs, key=lambda r: (r.seq, r.task_id)))
        return out

    def metrics(self) -> dict[str, float]:
        """Flat slash-named counters: `buffer/active`, `buffer/active/region/boundary`, …"""
        return pool_metrics(self.counts())

    def snapshot(self) -> dict[str, dict[str, object]]:
        """Counts per state: total, by origin, category, region, generation (retired: reason)."""
        return nest_counts(self.counts())

    # ------------------------------------------------------------ export / import

    def export_tasks(self, states: Iterable[TaskState] = STATES) -> list[Task]:
        """Tasks with a `rods` block holding lineage and the `buffer` lifecycle block."""
        recs = self.records(states)
        tasks = self.get_tasks([r.task_id for r in recs])
        return [with_buffer_block(t, r) for t, r in zip(tasks, recs, strict=True)]

    def import_tasks(self, tasks: Sequence[Task]) -> AdmitResult:
        """Restore exported tasks (state and stats from their `buffer` block). Tasks without one:
        seeds go to active, synthetic tasks to staged. Known ids are duplicates."""
        rejected: dict[str, str] = {}
        items: list[tuple[Task, TaskRecord]] = []
        plain_seeds: list[Task] = []
        plain_synthetic: list[Task] = []
        for t in tasks:
            if is_eval_task(t.id):
                rejected[t.id] = "held-out evaluation task"
                continue
            body, rec = split_buffer_block(t)
            if rec is not None:
                items.append((body, rec))
            elif body.rods is not None and body.rods.origin == "synthetic":
                plain_synthetic.append(body)
            else:
                plain_seeds.append(body)

        def plan() -> tuple[ChangeSet, AdmitResult]:
            return plan_import(items, self._read(t.id for t, _ in items))

        _, res = self._commit(plan)
        seeds = self.load_seeds(plain_seeds)
        staged = self.add_staged(plain_synthetic)
        return AdmitResult(
            admitted=res.admitted + seeds.admitted + staged.admitted,
            duplicates=res.duplicates + seeds.duplicates + staged.duplicates,
            rejected={**rejected, **seeds.rejected, **staged.rejected},
        )


def _seed_rejection(task: Task) -> str:
    if is_eval_task(task.id):
        return "held-out evaluation task"
    if task.rods is not None and task.rods.origin != "seed":
        return "not a seed (origin synthetic)"
    return ""


def _staged_rejection(task: Task) -> str:
    if is_eval_task(task.id):
        return "held-out evaluation task"
    if task.rods is None or task.rods.origin != "synthetic":
        return "not a synthetic task (needs a rods block with origin synthetic)"
    return ""


def with_buffer_block(task: Task, record: TaskRecord) -> Task:
    """The task with `rods.buffer` = its record's lifecycle fields (lineage stays in `rods`)."""
    meta: dict[str, Any] = (task.rods or RodsMeta()).model_dump(mode="json", exclude_none=True)
    meta[BUFFER_BLOCK] = record.model_dump(mode="json", exclude=_LINEAGE_FIELDS, exclude_none=True)
    return task.model_copy(update={"rods": RodsMeta.model_validate(meta)})


def split_buffer_block(task: Task) -> tuple[Task, TaskRecord | None]:
    """(the task without `rods.buffer`, the record it describes or None)."""
    if task.rods is None or BUFFER_BLOCK not in (task.rods.model_extra or {}):
        return task, None
    meta = task.rods.model_dump(mode="json", exclude_none=True)
    block = meta.pop(BUFFER_BLOCK)
    body = task.model_copy(update={"rods": RodsMeta.model_validate(meta)})
    record = TaskRecord.model_validate(
        {
            **block,
            "task_id": task.id,
            "category": task.category,
            "origin": task.rods.origin,
            "generation": task.rods.generation,
        }
    )
    return body, record
