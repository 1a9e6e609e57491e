"""One-off: convert a run stored before records had two parts to the current layout, in place.

Older versions of RODS kept each task's record as one JSON string key, `rods:<run>:rec:<id>`.
The buffer (`rods.store.buffer.RedisBuffer`) refuses such a run with a line that names
`rods buffer migrate`, which calls `migrate_layout`.
"""

from __future__ import annotations

import itertools

import redis

from rods.pool import TaskRecord
from rods.store.changes import encode_record
from rods.store.keys import RunKeys


def migrate_layout(r: redis.Redis, run: str, batch: int = 500) -> int:
    """Convert a run stored by RODS before records had two parts (a `rec:<task id>` JSON key per
    task) to the current layout, in place; returns the number of records converted.

    Counters, state sets, sample weights, task bodies and the event log are the same in both
    layouts and stay as they are (old events are version 1, still read). Each batch moves its
    records and deletes their old keys in one transaction; a marker key makes the buffer refuse
    the run until the last batch is done, and running this again finishes an interrupted
    migration. Nothing else may write to the run meanwhile."""
    keys = RunKeys(run)
    old_prefix = f"{keys.base}:rec:"
    r.set(keys.migrating, "1")
    done = 0
    found = r.scan_iter(match=old_prefix + "*", count=1000)  # one pass: SCAN returns every key
    while old_keys := list(itertools.islice(found, batch)):  # there throughout (some twice)
        pipe = r.pipeline(transaction=True)
        for key, raw in zip(old_keys, r.mget(old_keys), strict=True):
            if raw is None:
                continue
            record = TaskRecord.model_validate_json(raw)
            details, live = encode_record(record)
            pipe.hset(keys.records, record.task_id, details)
            pipe.hset(keys.live, record.task_id, live)
            pipe.delete(key)
            done += 1
        pipe.execute()
    r.delete(keys.migrating)
    return done
