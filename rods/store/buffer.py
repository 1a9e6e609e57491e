"""Redis replay buffer: the `ReplayBuffer` contract over the keys of `rods.store.keys`.

A task's record is stored in two hashes (`rods.store.changes.encode_record`): `live` holds its
live part — state, origin and statistics, everything a report reads or writes — in a small
binary layout (`rods.store.changes.LIVE_HEAD`), and `records` the rest as JSON (category,
generation, admission, promotion, retirement). Reads are plain commands (HMGET of both parts in
one MULTI, SMEMBERS/ZRANGE of the state sets, HGETALL of the counters). Every write, a report
included, is one call of the Lua script `rods/store/lua/apply.lua`: it checks that both parts of
each record are still exactly what the plan read and each guarded counter still has its planned
value, and only then writes both parts, task bodies, state sets, counters, the event and the
request-done marker — all or nothing (a Lua script runs atomically in Redis). A conflict makes
the caller re-read and re-plan (`ReplayBuffer.conflicts` counts them; exported as the metric
`buffer/conflicts`). The rules themselves run only in Python (`rods.pool`).

Why a report has no script of its own: one training step's report of 32 groups takes 1.3 ms at
the median on this path (3.5× the 0.4 ms of the server-side report script it replaced), and the
step's whole buffer traffic stays within its 5 ms p99 target on a quiet machine (2.2–4.0 ms);
one Redis serves 850–1,000 runs at one step per second each at half a core (1,200–1,350 with
the script). Neither difference is one a user notices, and the script was a second copy of the
rules (BENCHMARKS.md, "Replay buffer").

Because the check is compare-and-set on whole records, re-sending a script whose reply was lost
(redis-py retries commands on connection errors) cannot apply a change twice: the second attempt
finds the records changed and re-plans (a re-sent report finds the step already seen: a
duplicate). Scripts flushed by a server restart are reloaded transparently (EVALSHA → NOSCRIPT
→ SCRIPT LOAD) by redis-py's `Script`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

import redis

from rods.pool import PoolRules, TaskState
from rods.store.changes import SEP, ChangeSet, Read, decode_event, decode_parts
from rods.store.connection import binary_twin
from rods.store.contract import ApplyStatus, ReplayBuffer
from rods.store.events import BufferEvent
from rods.store.keys import EVENT_FIELD, LIVE_FIELD, RECORDS_FIELD, RunKeys
from rods.store.scripts import load


class RedisBuffer(ReplayBuffer):
    """The replay buffer of one run in Redis. Pass a client from `rods.store.connection.connect`."""

    def __init__(
        self,
        r: redis.Redis,
        run: str,
        rules: PoolRules | None = None,
        events_maxlen: int = 200_000,
    ) -> None:
        super().__init__(run, rules)
        self.r = r
        self._raw = binary_twin(r)  # the live parts are binary: read them without decoding
        self.keys = RunKeys(run)
        self.events_maxlen = events_maxlen
        self._apply_script = r.register_script(load("apply"))
        self._check_layout()

    def _check_layout(self) -> None:
        """A run stored by RODS before records had two parts (one `rec:<id>` key per task) has
        counters but no `records` hash, or is part-way through its migration
        (`rods.store.migrate`): refuse it with what to do, rather than report into it."""
        pipe = self.r.pipeline(transaction=False)
        pipe.exists(self.keys.counts)
        pipe.exists(self.keys.records)
        pipe.exists(self.keys.migrating)
        has_counts, has_records, migrating = pipe.execute()
        if migrating or (has_counts and not has_records):
            state = "part-way through its migration" if migrating else "in the layout"
            raise ValueError(
                f"run {self.run!r} is {state} of an older version of RODS (a "
                f"'{self.keys.base}:rec:<task id>' key per task). Convert it in place with "
                f"`rods buffer migrate --run {self.run}`, after stopping this run's trainer and "
                "synthesis workers."
            )

    def _read(self, task_ids: Iterable[str]) -> Read:
        ids = list(dict.fromkeys(task_ids))
        if not ids:
            return {}
        pipe = self._raw.pipeline(transaction=True)  # both parts from one instant
        pipe.hmget(self.keys.records, ids)
        pipe.hmget(self.keys.live, ids)
        details, live = pipe.execute()
        out = {}
        for t, d, v in zip(ids, details, live, strict=True):
            if d is None and v is None:
                continue
            if d is None or v is None:
                raise ValueError(
                    f"run {self.run}: the record of task {t!r} has only one of its two parts "
                    f"(hashes {self.keys.records} and {self.keys.live}); they were changed "
                    "outside RODS. Export the run, drop it, and import it again."
                )
            text = d.decode()
            out[t] = ((text, v), decode_parts(text, v))
        return out

    def _ids(self, state: TaskState) -> list[str]:
        if state == "active":
            return list(cast("list[str]", self.r.zrange(self.keys.active, 0, -1)))
        members = self.r.smembers(self.keys.staged if state == "staged" else self.keys.retired)
        return list(cast("set[str]", members))

    def _active_weights(self) -> list[tuple[str, float]]:
        # The raw reply skips redis-py's score callback (~25 % faster); RESP2 gives a flat list,
        # RESP3 pairs.
        reply = self.r.execute_command("ZRANGE", self.keys.active, 0, -1, "WITHSCORES")
        if reply and isinstance(reply[0], list | tuple):
            return [(m, float(s)) for m, s in reply]
        flat = iter(reply)
        return [(m, float(s)) for m, s in zip(flat, flat, strict=True)]

    def _random_active(self, n: int) -> list[str]:
        return list(cast("list[str]", self.r.zrandmember(self.keys.active, n) or []))

    def _bodies(self, task_ids: Sequence[str]) -> list[str | None]:
        return list(cast("list[str | None]", self.r.hmget(self.keys.tasks, list(task_ids)))) if task_ids else []

    def counts(self) -> dict[str, int]:
        counts = cast("dict[str, str]", self.r.hgetall(self.keys.counts))  # a decoding client
        return {k: int(v) for k, v in counts.items() if int(v)}

    def _reserve_seq(self, n: int) -> int:
        return int(self.r.incrby(self.keys.seq, n)) - n + 1

    def _apply(self, cs: ChangeSet) -> ApplyStatus:
        k = self.keys
        weights = cs.weights(self.rules)
        deltas = cs.deltas(self.rules)
        fields: list[str] = []
        old_live: list[bytes] = []
        new_live: list[bytes] = []
        for c in cs.changes:
            _check_id(c.task_id)
            old_details, old = c.old_raw or ("", b"")
            new_details, new = c.new_raw
            old_live.append(old)
            new_live.append(new)
            fields += [
                c.task_id,
                old_details,
                str(len(old)),
                new_details,
                str(len(new)),
                c.old.state if c.old else "",
                c.new.state,
                repr(weights.get(c.task_id, 0.0)),
                c.body or "",
            ]
        for key, value in cs.guards:
            fields += [key, str(value)]
        for key, d in deltas.items():
            fields += [key, str(d)]
        keys = [k.counts, k.active, k.staged, k.retired, k.tasks, k.events, k.requests_done, k.seq]
        keys += [k.records, k.live]
        args: list[Any] = [len(cs.changes), len(cs.guards), len(deltas), cs.event_header(), *cs.event_body()]
        args += [self.events_maxlen, cs.request_id or "", cs.seq_floor, SEP.join(fields)]
        args += [b"".join(old_live), b"".join(new_live)]
        return cast(ApplyStatus, self._apply_script(keys=keys, args=args))

    def events(self, count: int | None = None) -> list[BufferEvent]:
        def text(f: dict[bytes, bytes], name: str) -> str:
            return f.get(name.encode(), b"").decode()

        return [
            decode_event(
                text(f, EVENT_FIELD), text(f, RECORDS_FIELD), f.get(LIVE_FIELD.encode(), b"")
            )
            for _, f in cast("list[tuple[bytes, dict[bytes, bytes]]]", self._raw.xrange(self.keys.events, count=count))
        ]

    def is_request_done(self, request_id: str) -> bool:
        return bool(self.r.sismember(self.keys.requests_done, request_id))

    def drop_run(self) -> int:
        """Delete every key of this run (tests, maintenance). Returns the number deleted."""
        n = 0
        for key in self.r.scan_iter(match=self.keys.pattern, count=1000):
            n += int(self.r.delete(key))
        return n


def _check_id(task_id: str) -> None:
    # SEP joins the script's text arguments (redis-py packs each argument separately, slowly);
    # it never appears in JSON text, and a task id holding it is refused here.
    if SEP in task_id:
        raise ValueError(f"task id {task_id!r} contains a control character")
