"""Every cross-process name: Redis keys, streams, consumer groups, Celery queue and task names.

All Redis names of a run live under `rods:<run>:` so several runs can share one server, and a
run's keys can be listed with `SCAN MATCH rods:<run>:*`. Nothing else in the code base spells a
key, stream, group, queue or task name.

Layout of a run (types in brackets):
- `tasks` [hash] task id → task body (BFCL JSON with the lineage `rods` block); written once.
- `live` [hash] task id → the live part of its `TaskRecord`: state, origin and statistics, what
  every report reads and writes, in a small binary layout (`rods.store.changes.LIVE_HEAD`);
  `records` [hash] task id → the rest of the record (JSON: category, generation, admission,
  promotion, retirement). Together the source of truth; the sets and counters below mirror them
  and change in the same atomic script.
- `staged` [set], `active` [zset, score = boundary sample weight], `retired` [set] of task ids.
- `counts` [hash] counters `<state>`, `<state>/<dimension>/<value>` (see `rods.pool.count_keys`).
- `seq` [string] admission counter; `requests_done` [set] boundary request ids already stored.
- `events` [stream] the buffer's event log: one entry per write, fields `event` (header JSON),
  `records` (JSON array of the details of the tasks whose lifecycle changed) and `live` (every
  changed task's id and live part) — see `rods.store.events`.
- `boundary` [stream] `BoundaryRequest`s; `boundary:dead` [stream] requests that failed N times.
- `trl:batches` [hash] step → JSON list of the task ids of that step's batch when training inside
  TRL (`trainer.trl.dataset`): the first process to reach a step writes it, every process reads it.
- `boundary:seen:<request id>` [string, TTL] publish dedup marker; `boundary:last` [hash] task id
  → last step a request was published (the detector's cooldown); `boundary:errors` [hash] stream
  entry id → last processing error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PREFIX = "rods"
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")

# Consumer group that reads the boundary stream (services/dispatcher).
DISPATCH_GROUP = "dispatchers"
# Celery: the queue synthesis tasks go to and the registered task name (services/).
SYNTH_QUEUE = "rods.synth"
SYNTH_TASK = "rods.synthesize"
# Stream entry field names.
EVENT_FIELD = "event"  # events stream: the event header JSON
RECORDS_FIELD = "records"  # events stream: JSON array of the details of lifecycle changes
LIVE_FIELD = "live"  # events stream: id, live part, id, … of the changed tasks, joined by 0x1e
REQUEST_FIELD = "request"  # boundary stream: the BoundaryRequest JSON
DEAD_FIELD = "dead"  # dead-letter stream: the DeadLetter JSON


def check_run(run: str) -> str:
    """A run name is 1–64 characters of letters, digits, `_`, `.`, `-` (it is part of key names)."""
    if not RUN_NAME.match(run):
        raise ValueError(
            f"bad run name {run!r}: use 1-64 letters, digits, '_', '.', '-' (starting alphanumeric)"
        )
    return run


@dataclass(frozen=True)
class RunKeys:
    """The Redis names of one run."""

    run: str

    def __post_init__(self) -> None:
        check_run(self.run)

    @property
    def base(self) -> str:
        return f"{PREFIX}:{self.run}"

    @property
    def pattern(self) -> str:
        """SCAN pattern matching every key of the run."""
        return f"{self.base}:*"

    # replay buffer
    @property
    def tasks(self) -> str:
        return f"{self.base}:tasks"

    @property
    def records(self) -> str:
        return f"{self.base}:records"

    @property
    def live(self) -> str:
        return f"{self.base}:live"

    @property
    def migrating(self) -> str:
        """[string] present while `rods.store.migrate.migrate_layout` converts the run."""
        return f"{self.base}:migrating"

    @property
    def staged(self) -> str:
        return f"{self.base}:staged"

    @property
    def active(self) -> str:
        return f"{self.base}:active"

    @property
    def retired(self) -> str:
        return f"{self.base}:retired"

    @property
    def counts(self) -> str:
        return f"{self.base}:counts"

    @property
    def seq(self) -> str:
        return f"{self.base}:seq"

    @property
    def requests_done(self) -> str:
        return f"{self.base}:requests_done"

    @property
    def events(self) -> str:
        return f"{self.base}:events"

    # boundary stream
    @property
    def boundary(self) -> str:
        return f"{self.base}:boundary"

    @property
    def boundary_dead(self) -> str:
        return f"{self.base}:boundary:dead"

    def boundary_seen(self, request_id: str) -> str:
        return f"{self.base}:boundary:seen:{request_id}"

    @property
    def boundary_last(self) -> str:
        return f"{self.base}:boundary:last"

    @property
    def boundary_errors(self) -> str:
        return f"{self.base}:boundary:errors"

    # synthesis service
    @property
    def synth_metrics(self) -> str:
        """[hash] summed synthesis metrics of the run (`synth/…`, `time/synth/…`)."""
        return f"{self.base}:synth:metrics"

    @property
    def synth_latency(self) -> str:
        """[list] boundary-detection → staged latencies in seconds, newest first."""
        return f"{self.base}:synth:latency"

    # training inside TRL (trainer/trl)
    @property
    def trl_batches(self) -> str:
        """[hash] step → JSON list of the step's task ids (first writer wins: HSETNX)."""
        return f"{self.base}:trl:batches"
