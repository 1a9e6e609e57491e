"""Redis replay buffer: the `ReplayBuffer` contract over the keys of `rods.store.keys`.

Reads are plain commands (MGET of records, SMEMBERS/ZRANGE of the state sets, HGETALL of the
counters). Every write is one call of the Lua script `APPLY`: it checks that each record is still
exactly the JSON the plan read and each guarded counter still has its planned value, and only then
writes records, task bodies, state sets, counters, the event and the request-done marker — all or
nothing (a Lua script runs atomically in Redis). A conflict makes the caller re-read and re-plan.

Because the check is compare-and-set on whole records, re-sending a script whose reply was lost
(redis-py retries commands on connection errors) cannot apply a change twice: the second attempt
finds the records changed and re-plans. Scripts flushed by a server restart are reloaded
transparently (EVALSHA → NOSCRIPT → SCRIPT LOAD) by redis-py's `Script`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import redis

from rods.pool import PoolRules, TaskState
from rods.store.changes import ChangeSet, Read, decode_record
from rods.store.contract import ApplyStatus, ReplayBuffer
from rods.store.events import BufferEvent
from rods.store.keys import EVENT_FIELD, RECORDS_FIELD, RunKeys

SEP = "\x1e"  # ASCII record separator: never appears in JSON text or in task ids (checked)

# KEYS: 1 counts, 2 active, 3 staged, 4 retired, 5 tasks, 6 events, 7 requests_done, 8 seq,
#       8+i the record key of change i.
# ARGV: 1 n_changes, 2 n_guards, 3 n_deltas, 4 event header JSON (the event without its records),
#       5 events maxlen, 6 request id ('' none), 7 seq floor, 8 the fields below joined by SEP
#       (one argument instead of hundreds: redis-py packs each argument separately, slowly):
#       7 per change: id, old JSON ('' = must not exist), new JSON, old state ('' none), new
#       state, weight, body ('' none); then 2 per guard (field, value), 2 per counter delta
#       (field, increment).
APPLY = """
local nc, ng, nd = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local rid = ARGV[6]
if rid ~= '' and redis.call('SISMEMBER', KEYS[7], rid) == 1 then return 'done' end
local f, s, pos = {}, ARGV[8], 1
while true do
  local i = string.find(s, '\\30', pos, true)
  if not i then f[#f + 1] = string.sub(s, pos); break end
  f[#f + 1] = string.sub(s, pos, i - 1)
  pos = i + 1
end
-- one command per batch of up to 500 arguments (Lua's unpack has a stack limit)
local function batched(cmd, key, args)
  for i = 1, #args, 500 do
    local last = math.min(i + 499, #args)
    if key then redis.call(cmd, key, unpack(args, i, last))
    else redis.call(cmd, unpack(args, i, last)) end
  end
end
-- compare-and-set: every record must still be exactly what the plan read
local rec_keys = {}
for i = 1, nc do rec_keys[i] = KEYS[8 + i] end
local a = 1
for b = 1, nc, 500 do
  local cur = redis.call('MGET', unpack(rec_keys, b, math.min(b + 499, nc)))
  for j = 1, #cur do
    local old = f[a + 1]
    if cur[j] == false then
      if old ~= '' then return 'conflict' end
    elseif cur[j] ~= old then return 'conflict' end
    a = a + 7
  end
end
local g = a
for i = 1, ng do
  local v = tonumber(redis.call('HGET', KEYS[1], f[g]) or '0')
  if v ~= tonumber(f[g + 1]) then return 'conflict' end
  g = g + 2
end
-- apply
local sets = {staged = KEYS[3], retired = KEYS[4]}
local mset, zadd, records = {}, {}, {}
a = 1
for i = 1, nc do
  local id, new, from, to = f[a], f[a + 2], f[a + 3], f[a + 4]
  mset[#mset + 1] = KEYS[8 + i]
  mset[#mset + 1] = new
  records[i] = new
  if f[a + 6] ~= '' then redis.call('HSETNX', KEYS[5], id, f[a + 6]) end
  if from ~= to then
    if from == 'active' then redis.call('ZREM', KEYS[2], id)
    elseif from ~= '' then redis.call('SREM', sets[from], id) end
    if to ~= 'active' then redis.call('SADD', sets[to], id) end
  end
  if to == 'active' then
    zadd[#zadd + 1] = f[a + 5]
    zadd[#zadd + 1] = id
  end
  a = a + 7
end
batched('MSET', nil, mset)
batched('ZADD', KEYS[2], zadd)
a = g
for i = 1, nd do
  if redis.call('HINCRBY', KEYS[1], f[a], f[a + 1]) == 0 then
    redis.call('HDEL', KEYS[1], f[a])
  end
  a = a + 2
end
if nc > 0 then
  redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[5], '*',
    '@EVENT@', ARGV[4], '@RECORDS@', '[' .. table.concat(records, ',') .. ']')
end
if rid ~= '' then redis.call('SADD', KEYS[7], rid) end
local floor = tonumber(ARGV[7])
if floor > 0 and tonumber(redis.call('GET', KEYS[8]) or '0') < floor then
  redis.call('SET', KEYS[8], floor)
end
return 'ok'
""".replace("@EVENT@", EVENT_FIELD).replace("@RECORDS@", RECORDS_FIELD)


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
        self.keys = RunKeys(run)
        self.events_maxlen = events_maxlen
        self._apply_script = r.register_script(APPLY)

    def _read(self, task_ids: Iterable[str]) -> Read:
        ids = list(dict.fromkeys(task_ids))
        if not ids:
            return {}
        raws = self.r.mget([self.keys.record(t) for t in ids])
        return {t: (raw, decode_record(raw)) for t, raw in zip(ids, raws, strict=True) if raw}

    def _ids(self, state: TaskState) -> list[str]:
        if state == "active":
            return list(self.r.zrange(self.keys.active, 0, -1))
        return list(self.r.smembers(self.keys.staged if state == "staged" else self.keys.retired))

    def _active_weights(self) -> list[tuple[str, float]]:
        # The raw reply skips redis-py's score callback (~25 % faster); RESP2 gives a flat list,
        # RESP3 pairs.
        reply = self.r.execute_command("ZRANGE", self.keys.active, 0, -1, "WITHSCORES")
        if reply and isinstance(reply[0], list | tuple):
            return [(m, float(s)) for m, s in reply]
        flat = iter(reply)
        return [(m, float(s)) for m, s in zip(flat, flat, strict=True)]

    def _random_active(self, n: int) -> list[str]:
        return list(self.r.zrandmember(self.keys.active, n) or [])

    def _bodies(self, task_ids: Sequence[str]) -> list[str | None]:
        return list(self.r.hmget(self.keys.tasks, list(task_ids))) if task_ids else []

    def counts(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.r.hgetall(self.keys.counts).items() if int(v)}

    def _reserve_seq(self, n: int) -> int:
        return int(self.r.incrby(self.keys.seq, n)) - n + 1

    def _apply(self, cs: ChangeSet) -> ApplyStatus:
        k = self.keys
        weights = cs.weights(self.rules)
        deltas = cs.deltas(self.rules)
        header = json.dumps(
            {"v": 1, "kind": cs.kind, "step": cs.step, "t": cs.t, "request_id": cs.request_id}
        )
        fields: list[str] = []
        for c in cs.changes:
            if SEP in c.task_id:
                raise ValueError(f"task id {c.task_id!r} contains a control character")
            fields += [
                c.task_id,
                c.old_raw or "",
                c.new_raw,
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
        keys += [k.record(c.task_id) for c in cs.changes]
        args = [len(cs.changes), len(cs.guards), len(deltas), header, self.events_maxlen]
        args += [cs.request_id or "", cs.seq_floor, SEP.join(fields)]
        return self._apply_script(keys=keys, args=args)  # type: ignore[return-value]

    def events(self, count: int | None = None) -> list[BufferEvent]:
        out = []
        for _, fields in self.r.xrange(self.keys.events, count=count):
            header = json.loads(fields[EVENT_FIELD])
            out.append(
                BufferEvent.model_validate({**header, "records": json.loads(fields[RECORDS_FIELD])})
            )
        return out

    def is_request_done(self, request_id: str) -> bool:
        return bool(self.r.sismember(self.keys.requests_done, request_id))

    def drop_run(self) -> int:
        """Delete every key of this run (tests, maintenance). Returns the number deleted."""
        n = 0
        for key in self.r.scan_iter(match=self.keys.pattern, count=1000):
            n += int(self.r.delete(key))
        return n
