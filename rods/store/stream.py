"""The boundary stream: trainer → synthesis requests, with at-least-once delivery and dead letters.

Publishing (trainer): `publish(requests)` runs one Lua script that, per request, skips it if its
task was published fewer than `cooldown_steps` steps before (the authoritative cooldown check,
so two trainers cannot both request a task), sets a dedup marker `boundary:seen:<request_id>`
(NX, with a TTL) and only if it was new XADDs the request (approximate MAXLEN) and records the
step in `boundary:last`. Publishing the same request id twice is therefore harmless.
`last_requested` gives the detector that cooldown state; it remembers what it read and what this
client published, so a trainer reads each task's state from Redis once (a stale view can only
make the server skip a request, never break the cooldown).

Consuming (dispatcher): consumers of one group read with `read()`: first entries of dead
consumers idle longer than `claim_idle_ms` (XAUTOCLAIM), then new ones (XREADGROUP). A consumer
acknowledges (`ack`, XACK) only after the work is stored; on failure it records the error
(`fail`) and leaves the entry pending, so it is reclaimed later. An entry reclaimed for the
(N+1)-th time (N = `max_deliveries`) is not handed out again: it moves to the dead-letter stream
`boundary:dead` with its last error and delivery count, atomically with its XACK. A consumer that
tracks its own work (the dispatcher) re-sends an entry it still holds with `redeliver` (XCLAIM:
the delivery count grows) and gives up on one with `dead_letter`; `keep` resets the idle time of
entries it is still working on, so other consumers do not reclaim them. A malformed entry is
dead-lettered at once with its raw fields and the validation error naming the field. Delivery is
at-least-once; stores make the effect exactly-once by keying their writes on `request_id`
(`ReplayBuffer.add_staged(..., request_id=...)`).

Limit: MAXLEN trimming is approximate; entries trimmed while still pending are acknowledged and
counted in `Batch.trimmed` (size `stream_maxlen` well above the backlog to avoid it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

import redis
from pydantic import BaseModel, ConfigDict, ValidationError

from rods.boundary import BoundaryRequest
from rods.config import Settings
from rods.store.keys import DEAD_FIELD, DISPATCH_GROUP, REQUEST_FIELD, RunKeys

# KEYS: 1 stream, 2 boundary:last, 2+i seen marker of request i.
# ARGV: 1 maxlen, 2 dedup ttl (s), 3 cooldown steps, then 3 per request: task id, policy step,
#       request JSON. Returns the 1-based indices of the requests published.
PUBLISH = """
local out = {}
local cooldown = tonumber(ARGV[3])
for i = 1, #KEYS - 2 do
  local a = 4 + (i - 1) * 3
  local step = tonumber(ARGV[a + 1])
  local prev = tonumber(redis.call('HGET', KEYS[2], ARGV[a]) or '-1')
  local cooling = prev >= 0 and step - prev < cooldown and step >= prev
  if not cooling and redis.call('SET', KEYS[2 + i], '1', 'NX', 'EX', ARGV[2]) then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', '@REQUEST@', ARGV[a + 2])
    if step > prev then redis.call('HSET', KEYS[2], ARGV[a], step) end
    out[#out + 1] = i
  end
end
return out
""".replace("@REQUEST@", REQUEST_FIELD)


class Delivery(BaseModel):
    """One stream entry handed to a consumer."""

    model_config = ConfigDict(frozen=True)
    entry_id: str
    request: BoundaryRequest
    deliveries: int  # how many times it has been handed out, this time included


class DeadLetter(BaseModel):
    """A request that failed `max_deliveries` times, or a malformed entry (wire model of
    `boundary:dead`). v2 adds `fields`; a v1 letter reads with `fields` empty."""

    model_config = ConfigDict(frozen=True)
    v: int = 2
    entry_id: str
    request: str  # the entry's raw request JSON (may be malformed; that can be why it is here)
    deliveries: int
    last_error: str
    consumer: str
    fields: dict[str, str] = {}  # the raw stream entry, every field as it was published


def malformed_reason(fields: dict[str, str], error: ValidationError | None) -> str:
    """What is wrong with an entry, naming the field: the stream field or the request's own."""
    if REQUEST_FIELD not in fields:
        return f"malformed entry: no {REQUEST_FIELD!r} field (fields: {sorted(fields) or 'none'})"
    parts = []
    for err in (error.errors() if error is not None else [])[:3]:
        loc = ".".join(str(x) for x in err.get("loc", ()))
        parts.append(f"{loc}: {err['msg']}" if loc else err["msg"])
    return "malformed request: " + ("; ".join(parts) or "unreadable")


@dataclass
class Batch:
    deliveries: list[Delivery] = field(default_factory=list)
    dead: list[str] = field(default_factory=list)  # entry ids moved to the dead-letter stream
    trimmed: int = 0  # pending entries that MAXLEN trimming removed (acknowledged, lost)


@dataclass
class ProcessStats:
    done: int = 0
    failed: int = 0
    dead: int = 0


class BoundaryStream:
    def __init__(
        self,
        r: redis.Redis,
        run: str,
        settings: Settings | None = None,
        group: str = DISPATCH_GROUP,
    ) -> None:
        s = settings or Settings()
        self.r = r
        self.keys = RunKeys(run)
        self.group = group
        self.maxlen = s.stream_maxlen
        self.dedup_ttl_s = s.dedup_ttl_s
        self.claim_idle_ms = s.claim_idle_ms
        self.max_deliveries = s.max_deliveries
        self.cooldown_steps = s.cooldown_steps
        self._publish = r.register_script(PUBLISH)
        self._last: dict[str, int | None] = {}  # task id → last published step, as last known

    # ------------------------------------------------------------ trainer side

    def publish(self, requests: Sequence[BoundaryRequest]) -> list[str]:
        """XADD the requests neither published before nor cooling down; returns their ids."""
        if not requests:
            return []
        keys = [self.keys.boundary, self.keys.boundary_last]
        keys += [self.keys.boundary_seen(q.request_id) for q in requests]
        args: list[str | int] = [self.maxlen, self.dedup_ttl_s, self.cooldown_steps]
        for q in requests:
            args += [q.task_id, q.policy_step, q.model_dump_json()]
        published = [requests[int(i) - 1] for i in self._publish(keys=keys, args=args) or []]
        for q in published:
            last = self._last.get(q.task_id)
            self._last[q.task_id] = q.policy_step if last is None else max(last, q.policy_step)
        return [q.request_id for q in published]

    def last_requested(self, task_ids: Sequence[str], fresh: bool = False) -> dict[str, int]:
        """Last step a request was published per task (absent: never) — the cooldown state.

        Reads Redis only for tasks this client knows nothing about (or all, with `fresh`)."""
        unknown = list(
            dict.fromkeys(task_ids if fresh else [t for t in task_ids if t not in self._last])
        )
        if unknown:
            if len(self._last) > 100_000:
                self._last.clear()
            steps = self.r.hmget(self.keys.boundary_last, unknown)
            self._last.update(
                {t: None if s is None else int(s) for t, s in zip(unknown, steps, strict=True)}
            )
        return {t: step for t in task_ids if (step := self._last.get(t)) is not None}

    # ------------------------------------------------------------ consumer side

    def ensure_group(self) -> None:
        """Create the consumer group (reading from the stream's start) if it does not exist."""
        try:
            self.r.xgroup_create(self.keys.boundary, self.group, id="0", mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    def read(self, consumer: str, count: int = 16, block_ms: int | None = None) -> Batch:
        """Reclaimed entries first (dead letters filtered out), then new ones."""
        batch = Batch()
        reclaimed = self.r.xautoclaim(
            self.keys.boundary, self.group, consumer, self.claim_idle_ms, "0-0", count=count
        )
        claimed, deleted = reclaimed[1], (reclaimed[2] if len(reclaimed) > 2 else [])
        if deleted:
            self.r.xack(self.keys.boundary, self.group, *deleted)
            batch.trimmed = len(deleted)
        if claimed:
            counts = self._delivery_counts(consumer, [eid for eid, _ in claimed])
            for eid, fields in claimed:
                self._hand_out(
                    batch, consumer, eid, fields, counts.get(eid, self.max_deliveries + 1)
                )
        if len(batch.deliveries) < count:
            block = block_ms if not batch.deliveries and not batch.dead else None
            got = self.r.xreadgroup(
                self.group,
                consumer,
                {self.keys.boundary: ">"},
                count=count - len(batch.deliveries),
                block=block,
            )
            # RESP2, decoded (rods.store.connection.client): [[stream, [(id, fields), …]]] or None
            streams = cast(list[tuple[str, list[tuple[str, dict[str, str]]]]], got or [])
            for _, entries in streams:
                for eid, fields in entries:
                    self._hand_out(batch, consumer, eid, fields, 1)
        return batch

    def ack(self, delivery: Delivery) -> None:
        """The work of this entry is stored: acknowledge it and forget its last error."""
        pipe = self.r.pipeline(transaction=True)
        pipe.xack(self.keys.boundary, self.group, delivery.entry_id)
        pipe.hdel(self.keys.boundary_errors, delivery.entry_id)
        pipe.execute()

    def fail(self, delivery: Delivery, error: str) -> None:
        """Record the error and leave the entry pending (it is reclaimed after `claim_idle_ms`)."""
        self.r.hset(self.keys.boundary_errors, delivery.entry_id, error[:2000])

    def keep(self, consumer: str, entry_ids: Sequence[str]) -> None:
        """Reset the idle time of entries `consumer` still works on (no delivery is counted)."""
        if entry_ids:
            self.r.xclaim(
                self.keys.boundary, self.group, consumer, 0, list(entry_ids), justid=True
            )

    def redeliver(self, consumer: str, delivery: Delivery) -> Batch:
        """Hand an entry this consumer holds out again (XCLAIM counts one more delivery).

        The batch holds it again, or lists it in `dead` (this would be delivery N+1, N =
        `max_deliveries`: moved to the dead-letter stream), or counts it `trimmed` (gone)."""
        eid = delivery.entry_id
        batch = Batch()
        claimed = self.r.xclaim(self.keys.boundary, self.group, consumer, 0, [eid])
        fields = claimed[0][1] if claimed else None  # [(id, fields)]; no fields: deleted
        if not isinstance(fields, dict) or not fields:
            self.r.xack(self.keys.boundary, self.group, eid)
            batch.trimmed = 1
            return batch
        counts = self._delivery_counts(consumer, [eid])
        self._hand_out(batch, consumer, eid, fields, counts.get(eid, delivery.deliveries + 1))
        return batch

    def dead_letter(self, delivery: Delivery, consumer: str, error: str) -> None:
        """Give up on an entry now: dead-letter it with `error` (atomically with its XACK)."""
        fields = {REQUEST_FIELD: delivery.request.model_dump_json()}
        self._dead_letter(delivery.entry_id, fields, delivery.deliveries, consumer, error)

    def process(
        self,
        consumer: str,
        handler: Callable[[BoundaryRequest], object],
        count: int = 16,
        block_ms: int | None = None,
    ) -> ProcessStats:
        """One read → handle → ack/fail pass; a handler exception is recorded, never raised."""
        batch = self.read(consumer, count, block_ms)
        stats = ProcessStats(dead=len(batch.dead))
        for d in batch.deliveries:
            try:
                handler(d.request)
            except Exception as e:  # noqa: BLE001 - the error becomes data on the entry
                self.fail(d, f"{type(e).__name__}: {e}")
                stats.failed += 1
                continue
            self.ack(d)
            stats.done += 1
        return stats

    # ------------------------------------------------------------ inspection

    def pending(self) -> int:
        """Entries delivered but not acknowledged (0 if the group does not exist)."""
        try:
            return int(self.r.xpending(self.keys.boundary, self.group)["pending"])
        except redis.ResponseError:
            return 0

    def dead_letters(self) -> list[DeadLetter]:
        entries = self.r.xrange(self.keys.boundary_dead)
        return [DeadLetter.model_validate_json(f[DEAD_FIELD]) for _, f in entries or () if f]

    def length(self) -> int:
        return int(self.r.xlen(self.keys.boundary))

    # ------------------------------------------------------------ internals

    def _delivery_counts(self, consumer: str, entry_ids: list[str]) -> dict[str, int]:
        rows = self.r.xpending_range(
            self.keys.boundary, self.group, min=entry_ids[0], max=entry_ids[-1],
            count=len(entry_ids) + 100, consumername=consumer,
        )  # fmt: skip
        return {str(row["message_id"]): int(row["times_delivered"]) for row in rows}

    def _hand_out(
        self, batch: Batch, consumer: str, eid: str, fields: dict, deliveries: int
    ) -> None:
        fields = {str(k): str(v) for k, v in (fields or {}).items()}
        if deliveries > self.max_deliveries:
            self._dead_letter(eid, fields, deliveries - 1, consumer, None)
            batch.dead.append(eid)
            return
        try:
            if REQUEST_FIELD not in fields:
                raise LookupError(REQUEST_FIELD)
            request = BoundaryRequest.model_validate_json(fields[REQUEST_FIELD])
        except (ValidationError, LookupError) as e:
            reason = malformed_reason(fields, e if isinstance(e, ValidationError) else None)
            self._dead_letter(eid, fields, deliveries, consumer, reason)
            batch.dead.append(eid)
            return
        batch.deliveries.append(Delivery(entry_id=eid, request=request, deliveries=deliveries))

    def _dead_letter(
        self, eid: str, fields: dict[str, str], deliveries: int, consumer: str, error: str | None
    ) -> None:
        last_error = (
            error or self.r.hget(self.keys.boundary_errors, eid) or "unknown (no error recorded)"
        )
        dead = DeadLetter(
            entry_id=eid,
            request=fields.get(REQUEST_FIELD, ""),
            deliveries=deliveries,
            last_error=last_error,
            consumer=consumer,
            fields=fields,
        )
        pipe = self.r.pipeline(transaction=True)
        pipe.xadd(
            self.keys.boundary_dead,
            {DEAD_FIELD: dead.model_dump_json()},
            maxlen=self.maxlen,
            approximate=True,
        )
        pipe.xack(self.keys.boundary, self.group, eid)
        pipe.hdel(self.keys.boundary_errors, eid)
        pipe.execute()
