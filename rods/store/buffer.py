"""Redis replay buffer: the `ReplayBuffer` contract over the keys of `rods.store.keys`.

Reads are plain commands (MGET of records, SMEMBERS/ZRANGE of the state sets, HGETALL of the
counters). Every write is one call of the Lua script `APPLY`: it checks that each record is still
exactly the JSON the plan read and each guarded counter still has its planned value, and only then
writes records, task bodies, state sets, counters, the event and the request-done marker — all or
nothing (a Lua script runs atomically in Redis). A conflict makes the caller re-read and re-plan.

`report`, the hot path (every training step), is one call of the Lua script `REPORT` instead:
it reads the reported records, applies the report-time rules of `rods.pool` (apply_report,
retire_reason_after_report, region_label, sample_weight, the counter deltas) server-side, and
writes records, weights, state sets, counters and the event — atomically, with no read round
trip and no conflicts, and without Python parsing or encoding records. The rules are thus
expressed twice; tests/integration/test_buffer_report_script.py holds the script to the Python
rules on random records and reports. The script edits records as text in the layout `encode_record`
writes (statistics last); a record in any other layout makes it write nothing and hand the call
back to the generic Python path.

Because the check is compare-and-set on whole records, re-sending a script whose reply was lost
(redis-py retries commands on connection errors) cannot apply a change twice: the second attempt
finds the records changed and re-plans (a re-sent `REPORT` finds the step already seen: a
duplicate). Scripts flushed by a server restart are reloaded
transparently (EVALSHA → NOSCRIPT → SCRIPT LOAD) by redis-py's `Script`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Sequence

import redis

from rods.pool import PoolRules, Report, ReportOutcome, RetireReason, TaskState
from rods.store.changes import ChangeSet, Read, ReportResult, decode_record
from rods.store.contract import ApplyStatus, ReplayBuffer
from rods.store.events import BufferEvent
from rods.store.keys import EVENT_FIELD, RECORDS_FIELD, RunKeys

SEP = "\x1e"  # ASCII record separator: never appears in JSON text or in task ids (checked)
OUTCOME_CODES: dict[str, ReportOutcome] = {
    "a": "applied",
    "d": "duplicate",
    "n": "not_active",
    "u": "unknown",
    "s": "unscored",
}

# Shared by both scripts: split a SEP-joined argument; run a command over a long argument list,
# 500 arguments per call (Lua's unpack has a stack limit).
LUA_HELPERS = """
local function split(s, sep)
  local f, pos = {}, 1
  while true do
    local i = string.find(s, sep, pos, true)
    if not i then f[#f + 1] = string.sub(s, pos); return f end
    f[#f + 1] = string.sub(s, pos, i - 1)
    pos = i + 1
  end
end
local function batched(cmd, key, args)
  for b = 1, #args, 500 do
    local last = math.min(b + 499, #args)
    if key then redis.call(cmd, key, unpack(args, b, last))
    else redis.call(cmd, unpack(args, b, last)) end
  end
end
"""

# KEYS: 1 counts, 2 active, 3 staged, 4 retired, 5 tasks, 6 events, 7 requests_done, 8 seq,
#       8+i the record key of change i.
# ARGV: 1 n_changes, 2 n_guards, 3 n_deltas, 4 event header JSON (the event without its records),
#       5 events maxlen, 6 request id ('' none), 7 seq floor, 8 the fields below joined by SEP
#       (one argument instead of hundreds: redis-py packs each argument separately, slowly):
#       7 per change: id, old JSON ('' = must not exist), new JSON, old state ('' none), new
#       state, weight, body ('' none); then 2 per guard (field, value), 2 per counter delta
#       (field, increment).
APPLY = LUA_HELPERS + """
local nc, ng, nd = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local rid = ARGV[6]
if rid ~= '' and redis.call('SISMEMBER', KEYS[7], rid) == 1 then return 'done' end
local f = split(ARGV[8], '\\30')
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

# KEYS: 1 counts, 2 active, 3 retired, 4 events, 4+i the record key of the i-th distinct task.
# ARGV: 1 step, 2 event header JSON, 3 events maxlen, 4 the rules joined by SEP (REPORT_RULES
#       order), 5 per report joined by SEP: record index i, task id, mean as text ('' = NaN),
#       variance as text.
# Returns {'fallback'} having written nothing when a record it would change is not in the
# layout `encode_record` writes; else {outcome letter per report (OUTCOME_CODES), then task id
# and reason of each retirement in order}.
REPORT = LUA_HELPERS + """
local R = split(ARGV[4], '\\30')
local trial_below, mastered_above, hard_below = tonumber(R[1]), tonumber(R[2]), tonumber(R[3])
local min_obs, k, seeds_can_retire = tonumber(R[4]), tonumber(R[5]), R[6] == '1'
local floor, region_hard, region_mastered = tonumber(R[7]), tonumber(R[8]), tonumber(R[9])
local step = tonumber(ARGV[1])

-- math.fsum (CPython's algorithm: Shewchuk partials, then round-half-even correction), so
-- "recent r̄" is the same double as rods.pool.TaskRecord.recent_mean
local function fsum(xs)
  -- fast path: a left-to-right sum in which no addition rounds is exact, hence math.fsum
  local s, exact = xs[1], true
  for j = 2, #xs do
    local x = xs[j]
    local hi = s + x
    local lo
    if math.abs(s) >= math.abs(x) then lo = x - (hi - s) else lo = s - (hi - x) end
    if lo ~= 0 then exact = false; break end
    s = hi
  end
  if exact then return s end
  local p = {}
  for _, x in ipairs(xs) do
    local n = 0
    for j = 1, #p do
      local y = p[j]
      if math.abs(x) < math.abs(y) then x, y = y, x end
      local hi = x + y
      local lo = y - (hi - x)
      if lo ~= 0 then n = n + 1; p[n] = lo end
      x = hi
    end
    for j = #p, n + 1, -1 do p[j] = nil end
    if x ~= 0 then p[n + 1] = x end
  end
  local n, hi, lo = #p, 0.0, 0.0
  if n > 0 then
    hi = p[n]; n = n - 1
    while n > 0 do
      local x, y = hi, p[n]
      n = n - 1
      hi = x + y
      lo = y - (hi - x)
      if lo ~= 0 then break end
    end
    if n > 0 and ((lo < 0 and p[n] < 0) or (lo > 0 and p[n] > 0)) then
      local y = lo * 2
      local x = hi + y
      if y == x - hi then hi = x end
    end
  end
  return hi
end
local function region(m)  -- rods.pool.region_label
  if m == nil then return 'unseen' end
  if m < region_hard then return 'hard' end
  if m > region_mastered then return 'mastered' end
  return 'boundary'
end
local function weight(m)  -- rods.pool.sample_weight(record, 'boundary', floor)
  if m == nil then return 1.0 end
  local w = 4.0 * m * (1.0 - m)
  if w < floor then return floor end
  return w
end
local STATS = '^,"visits":(%d+),"last_mean":([^,]+),"last_var":[^,]+,' ..
  '"last_seen_step":([^,]+),"history":%[([^%]]*)%]}$'
local function has(raw, text) return string.find(raw, text, 1, true) ~= nil end
local function parse(raw)  -- the record's state, origin and statistics; nil: another layout
  local a = string.find(raw, ',"visits":', 1, true)
  if not a then return nil end
  local visits, mean, seen, hist = string.match(raw, STATS, a)
  if not visits then return nil end
  local r = {at = a, visits = tonumber(visits), mean_text = mean, seen = tonumber(seen)}
  if has(raw, '"state":"active"') then r.state = 'active'
  elseif has(raw, '"state":"staged"') or has(raw, '"state":"retired"') then r.state = 'other'
  else return nil end
  if has(raw, '"origin":"seed"') then r.origin = 'seed'
  elseif has(raw, '"origin":"synthetic"') then r.origin = 'synthetic'
  else return nil end
  if seen ~= 'null' and not r.seen then return nil end
  if mean ~= 'null' then
    r.mean = tonumber(mean)
    if not r.mean then return nil end
  end
  r.hist = hist == '' and {} or split(hist, ',')
  return r
end

local n_rec = #KEYS - 4
local old, now, order = {}, {}, {}
for b = 1, n_rec, 500 do
  local got = redis.call('MGET', unpack(KEYS, 4 + b, 4 + math.min(b + 499, n_rec)))
  for j = 1, #got do
    if got[j] then old[b + j - 1] = got[j] end
  end
end
local F = split(ARGV[5], '\\30')
local codes, retired = {}, {}
for j = 1, #F, 4 do
  local i, id, mean_text, var_text = tonumber(F[j]), F[j + 1], F[j + 2], F[j + 3]
  local r = now[i]
  if r == nil and old[i] then
    r = parse(old[i])
    if not r then return {'fallback'} end
    r.old_mean = r.mean
    now[i] = r
  end
  local code
  if r == nil then code = 'u'
  elseif mean_text == '' then code = 's'
  elseif r.state ~= 'active' then code = 'n'
  elseif r.seen == step then code = 'd'
  else
    code = 'a'
    -- rods.pool.apply_report
    r.visits = r.visits + 1
    r.mean, r.mean_text, r.var_text = tonumber(mean_text), mean_text, var_text
    if r.seen == nil or step > r.seen then r.seen = step end
    r.hist[#r.hist + 1] = mean_text
    while #r.hist > k do table.remove(r.hist, 1) end
    -- rods.pool.retire_reason_after_report
    local reason
    if r.origin ~= 'seed' or seeds_can_retire then
      if r.origin == 'synthetic' and r.visits == 1 and r.mean < trial_below then
        reason = 'trial'
      elseif #r.hist >= min_obs then
        local xs = {}
        for h = 1, #r.hist do xs[h] = tonumber(r.hist[h]) end
        local recent = fsum(xs) / #xs
        if recent > mastered_above then reason = 'mastered'
        elseif recent < hard_below then reason = 'hard' end
      end
    end
    if reason then
      r.state, r.reason = 'retired', reason
      retired[#retired + 1] = id
      retired[#retired + 1] = reason
    end
    if not r.changed then
      r.changed, r.id = true, id
      order[#order + 1] = i
    end
  end
  codes[#codes + 1] = code
end

-- every new record first (so a layout surprise still writes nothing), then the writes
local deltas, out = {}, {}
local function add(key, d) deltas[key] = (deltas[key] or 0) + d end
for n, i in ipairs(order) do
  local r = now[i]
  local prefix = string.sub(old[i], 1, r.at - 1)
  if r.state == 'retired' then
    local a, b = string.find(prefix, '"state":"active"', 1, true)
    local c, d = string.find(prefix, '"retired_step":null,"retired_reason":null', 1, true)
    local rec = cjson.decode(old[i])
    if not a or not c or c < b or type(rec.category) ~= 'string'
      or type(rec.generation) ~= 'number' then return {'fallback'} end
    prefix = string.sub(prefix, 1, a - 1) .. '"state":"retired"' .. string.sub(prefix, b + 1, c - 1)
      .. string.format('"retired_step":%d,"retired_reason":"%s"', step, r.reason)
      .. string.sub(prefix, d + 1)
    local dims = {'', '/origin/' .. r.origin, '/category/' .. rec.category,
      '/generation/' .. string.format('%d', rec.generation)}
    for _, dim in ipairs(dims) do
      add('active' .. dim, -1)
      add('retired' .. dim, 1)
    end
    add('active/region/' .. region(r.old_mean), -1)
    add('retired/region/' .. region(r.mean), 1)
    add('retired/reason/' .. r.reason, 1)
  elseif region(r.old_mean) ~= region(r.mean) then
    add('active/region/' .. region(r.old_mean), -1)
    add('active/region/' .. region(r.mean), 1)
  end
  out[n] = prefix .. string.format(',"visits":%d,"last_mean":%s,"last_var":%s,' ..
    '"last_seen_step":%d,"history":[%s]}', r.visits, r.mean_text, r.var_text, r.seen,
    table.concat(r.hist, ','))
end
local mset, zadd, gone = {}, {}, {}
for n, i in ipairs(order) do
  local r = now[i]
  mset[#mset + 1] = KEYS[4 + i]
  mset[#mset + 1] = out[n]
  if r.state == 'retired' then
    gone[#gone + 1] = r.id
  else
    zadd[#zadd + 1] = string.format('%.17g', weight(r.mean))
    zadd[#zadd + 1] = r.id
  end
end
batched('MSET', nil, mset)
batched('ZADD', KEYS[2], zadd)
batched('ZREM', KEYS[2], gone)
batched('SADD', KEYS[3], gone)
for key, d in pairs(deltas) do
  if d ~= 0 and redis.call('HINCRBY', KEYS[1], key, d) == 0 then
    redis.call('HDEL', KEYS[1], key)
  end
end
if #order > 0 then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[3], '*',
    '@EVENT@', ARGV[2], '@RECORDS@', '[' .. table.concat(out, ',') .. ']')
end
local reply = {table.concat(codes)}
for _, v in ipairs(retired) do reply[#reply + 1] = v end
return reply
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
        self._report_script = r.register_script(REPORT)
        self.report_fallbacks = 0  # reports the script handed back to the generic path (a metric)
        d = self.rules.detector
        self._rules_arg = SEP.join(
            [
                repr(self.rules.trial_below),
                repr(self.rules.mastered_above),
                repr(self.rules.hard_below),
                str(self.rules.min_obs),
                str(self.rules.history_k),
                "1" if self.rules.seeds_can_retire else "0",
                repr(self.rules.weight_floor),
                repr(d.hard_below),
                repr(d.mastered_above),
            ]
        )

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

    def _report(self, reports: Sequence[Report], step: int) -> ReportResult:
        """One call of the `REPORT` script: the rules of `rods.pool` applied server-side.

        Falls back to the generic plan-and-compare-and-set path (same rules in Python) for inputs
        the script does not take: non-finite variances or means other than NaN, and records not
        in the layout `encode_record` writes (the script then writes nothing)."""
        if not reports:
            return ReportResult()
        index: dict[str, int] = {}
        fields: list[str] = []
        for rep in reports:
            mean, var = rep.reward_mean, rep.reward_var
            if not math.isfinite(var) or math.isinf(mean) or SEP in rep.task_id:
                return super()._report(reports, step)
            i = index.setdefault(rep.task_id, len(index) + 1)
            fields += [str(i), rep.task_id, "" if math.isnan(mean) else repr(mean), repr(var)]
        k = self.keys
        header = json.dumps(
            {"v": 1, "kind": "report", "step": step, "t": time.time(), "request_id": None}
        )
        keys = [k.counts, k.active, k.retired, k.events, *(k.record(t) for t in index)]
        args = [step, header, self.events_maxlen, self._rules_arg, SEP.join(fields)]
        reply = self._report_script(keys=keys, args=args)
        if reply[0] == "fallback":
            self.report_fallbacks += 1
            return super()._report(reports, step)
        outcomes: dict[str, ReportOutcome] = {}
        for rep, code in zip(reports, reply[0], strict=True):
            if rep.task_id not in outcomes or code == "a":
                outcomes[rep.task_id] = OUTCOME_CODES[code]
        retired: list[tuple[str, RetireReason]] = list(zip(reply[1::2], reply[2::2], strict=True))
        return ReportResult(outcomes, retired)

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
