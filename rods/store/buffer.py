"""Redis replay buffer: the `ReplayBuffer` contract over the keys of `rods.store.keys`.

A task's record is stored in two hashes (`rods.store.changes.encode_record`): `live` holds its
live part — state, origin and statistics, everything a report reads or writes — in a small
binary layout (`rods.store.changes.LIVE_HEAD`), and `records` the rest as JSON (category,
generation, admission, promotion, retirement). Reads are plain commands (HMGET of both parts in
one MULTI, SMEMBERS/ZRANGE of the state sets, HGETALL of the counters). Every write is one call of the Lua script `APPLY`: it
checks that both parts of each record are still exactly what the plan read and each guarded
counter still has its planned value, and only then writes both parts, task bodies, state sets,
counters, the event and the request-done marker — all or nothing (a Lua script runs atomically
in Redis). A conflict makes the caller re-read and re-plan.

`report`, the hot path (every training step), is one call of the Lua script `REPORT` instead:
it reads the reported tasks' live parts, applies the report-time rules of `rods.pool`
(apply_report, retire_reason_after_report, region_label, the counter deltas) server-side, and
writes live parts, sample weights (computed by the client from the reported means), state sets,
counters and the event — atomically, with no read round trip and no conflicts. The JSON details
are read and rewritten only for a task the report retires. The rules are thus expressed twice;
tests/integration/test_buffer_report_script.py holds the script to the Python rules on random
records and reports. A part in another layout than `encode_live` / `encode_details` write makes
the script write nothing and hand the call back to the generic Python path.

Because the check is compare-and-set on whole records, re-sending a script whose reply was lost
(redis-py retries commands on connection errors) cannot apply a change twice: the second attempt
finds the records changed and re-plans (a re-sent `REPORT` finds the step already seen: a
duplicate). Scripts flushed by a server restart are reloaded
transparently (EVALSHA → NOSCRIPT → SCRIPT LOAD) by redis-py's `Script`.
"""

from __future__ import annotations

import itertools
import math
import struct
import threading
import time
import weakref
from collections.abc import Iterable, Sequence

import redis

from rods.pool import (
    PoolRules,
    ReportOutcome,
    RetireReason,
    Scored,
    TaskRecord,
    TaskState,
    boundary_weight,
)
from rods.store.changes import (
    SEP,
    ChangeSet,
    Read,
    ReportResult,
    decode_event,
    decode_parts,
    encode_record,
    event_header,
)
from rods.store.contract import ApplyStatus, ReplayBuffer
from rods.store.events import BufferEvent
from rods.store.keys import EVENT_FIELD, LIVE_FIELD, RECORDS_FIELD, RunKeys

# SEP (ASCII record separator) joins many text fields into one script argument (redis-py packs
# each argument separately, slowly); it never appears in JSON text or task ids (checked). Binary
# live parts travel in arguments of their own.
OUTCOME_CODES: dict[str, ReportOutcome] = {
    "a": "applied",
    "d": "duplicate",
    "n": "not_active",
    "u": "unknown",
    "s": "unscored",
}

# Shared by both scripts: split a SEP-joined argument; run a command over a long argument list,
# 500 arguments per call (Lua's unpack has a stack limit), and the same for a command whose
# reply has one element per argument (HMGET), replies concatenated.
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
local function read(cmd, key, args)
  local out = {}
  for b = 1, #args, 500 do
    local got = redis.call(cmd, key, unpack(args, b, math.min(b + 499, #args)))
    for j = 1, #got do out[#out + 1] = got[j] end
  end
  return out
end
"""

# KEYS: 1 counts, 2 active, 3 staged, 4 retired, 5 tasks, 6 events, 7 requests_done, 8 seq,
#       9 records (details parts), 10 live (live parts).
# ARGV: 1 n_changes, 2 n_guards, 3 n_deltas, 4 event header JSON, 5-6 the event's records and
#       live fields (`ChangeSet.event_body`), 7 events maxlen, 8 request id ('' none), 9 seq
#       floor, 10 the fields below joined by SEP, 11 the old live parts concatenated, 12 the new
#       live parts concatenated:
#       9 per change: id, old details ('' = must not exist), length of the old live part, new
#       details, length of the new live part, old state ('' none), new state, weight, body
#       ('' none); then 2 per guard (field, value), 2 per counter delta (field, increment).
APPLY = (
    LUA_HELPERS
    + """
local nc, ng, nd = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local rid = ARGV[8]
if rid ~= '' and redis.call('SISMEMBER', KEYS[7], rid) == 1 then return 'done' end
local f = split(ARGV[10], '\\30')
local ids, old_live, new_live = {}, {}, {}
local po, pn = 1, 1
for i = 1, nc do
  local a = 9 * i - 8
  ids[i] = f[a]
  old_live[i] = string.sub(ARGV[11], po, po + tonumber(f[a + 2]) - 1)
  new_live[i] = string.sub(ARGV[12], pn, pn + tonumber(f[a + 4]) - 1)
  po, pn = po + tonumber(f[a + 2]), pn + tonumber(f[a + 4])
end
-- compare-and-set: both parts of every record must still be exactly what the plan read
if nc > 0 then
  local details, live = read('HMGET', KEYS[9], ids), read('HMGET', KEYS[10], ids)
  for i = 1, nc do
    local a = 9 * i - 8
    if f[a + 1] == '' then
      if details[i] or live[i] then return 'conflict' end
    elseif details[i] ~= f[a + 1] or live[i] ~= old_live[i] then return 'conflict' end
  end
end
local g = 9 * nc + 1
for i = 1, ng do
  local v = tonumber(redis.call('HGET', KEYS[1], f[g]) or '0')
  if v ~= tonumber(f[g + 1]) then return 'conflict' end
  g = g + 2
end
-- apply
local sets = {staged = KEYS[3], retired = KEYS[4]}
local hdetails, hlive, zadd = {}, {}, {}
for i = 1, nc do
  local a = 9 * i - 8
  local id, from, to = f[a], f[a + 5], f[a + 6]
  if f[a + 3] ~= f[a + 1] then
    hdetails[#hdetails + 1] = id
    hdetails[#hdetails + 1] = f[a + 3]
  end
  hlive[#hlive + 1] = id
  hlive[#hlive + 1] = new_live[i]
  if f[a + 8] ~= '' then redis.call('HSETNX', KEYS[5], id, f[a + 8]) end
  if from ~= to then
    if from == 'active' then redis.call('ZREM', KEYS[2], id)
    elseif from ~= '' then redis.call('SREM', sets[from], id) end
    if to ~= 'active' then redis.call('SADD', sets[to], id) end
  end
  if to == 'active' then
    zadd[#zadd + 1] = f[a + 7]
    zadd[#zadd + 1] = id
  end
end
batched('HSET', KEYS[9], hdetails)
batched('HSET', KEYS[10], hlive)
batched('ZADD', KEYS[2], zadd)
local a = g
for i = 1, nd do
  if redis.call('HINCRBY', KEYS[1], f[a], f[a + 1]) == 0 then
    redis.call('HDEL', KEYS[1], f[a])
  end
  a = a + 2
end
if nc > 0 then
  redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[7], '*', '@EVENT@', ARGV[4],
    '@RECORDS@', ARGV[5], '@LIVE@', ARGV[6])
end
if rid ~= '' then redis.call('SADD', KEYS[7], rid) end
local floor = tonumber(ARGV[9])
if floor > 0 and tonumber(redis.call('GET', KEYS[8]) or '0') < floor then
  redis.call('SET', KEYS[8], floor)
end
return 'ok'
"""
)

# KEYS: 1 counts, 2 active, 3 retired, 4 events, 5 records (details parts), 6 live (live parts).
# ARGV: 1 step, 2 event header JSON, 3 events maxlen, 4 the rules joined by SEP (REPORT_RULES
#       order), 5 per report, each field followed by SEP: task id, the sample weight the task
#       gets if the report applies (`rods.pool.boundary_weight`; '' for an unscored group);
#       6 per report the mean (NaN: unscored) and variance as little-endian doubles.
# Returns {'fallback'} having written nothing when a part it would read or change is not in the
# layout `encode_live` / `encode_details` write; else {outcome letter per report
# (OUTCOME_CODES), then task id and reason of each retirement in order}.
REPORT = (
    LUA_HELPERS
    + """
local R = split(ARGV[4], '\\30')
local trial_below, mastered_above, hard_below = tonumber(R[1]), tonumber(R[2]), tonumber(R[3])
local min_obs, k, seeds_can_retire = tonumber(R[4]), tonumber(R[5]), R[6] == '1'
local region_hard, region_mastered = tonumber(R[7]), tonumber(R[8])
local step_text = ARGV[1]
local step = tonumber(step_text)
local byte, sub, rep, abs = string.byte, string.sub, string.rep, math.abs
local spack, sunpack = struct.pack, struct.unpack

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

-- A live part (rods.store.changes.LIVE_HEAD) unpacks into one array, indexed by these:
local N, STATE, ORIGIN, FLAGS, VISITS, SEEN, MEAN, VAR, H = 1, 2, 3, 4, 5, 6, 7, 8, 9
-- r[N] history length; r[FLAGS]: 1 seen, 2 mean, 4 variance present; r[H .. H + n - 1] history
local ACTIVE, STAGED, RETIRED, SEED, SYNTHETIC = byte('a'), byte('s'), byte('r'), byte('s'), byte('y')
local FMT = {}
local function layout(n)  -- of a live part with a history of n means
  if not FMT[n] then FMT[n] = '<BBBBI4i8dd' .. rep('d', n) end
  return FMT[n]
end
-- math.fsum of the history, the exact "recent r̄" of rods.pool (used only near a threshold)
local function exact_recent(r)
  local xs = {}
  for q = 1, r[N] do xs[q] = r[H + q - 1] end
  return fsum(xs) / r[N]
end

local ids, at, rep_of, weight_of = {}, {}, {}, {}  -- distinct ids; id -> index; per report
for id, w in string.gmatch(ARGV[5], '([^\\30]*)\\30([^\\30]*)\\30') do
  if not at[id] then
    ids[#ids + 1] = id
    at[id] = #ids
  end
  rep_of[#rep_of + 1] = at[id]
  weight_of[#rep_of] = w
end
local live = read('HMGET', KEYS[6], ids)
local numbers = {sunpack('<' .. rep('d', 2 * #rep_of), ARGV[6])}  -- mean, variance per report
local now, old_mean, weight, reason, changed = {}, {}, {}, {}, {}  -- per distinct task
local order, codes, retired = {}, {}, {}
for j = 1, #rep_of do
  local i = rep_of[j]
  local mean, var = numbers[2 * j - 1], numbers[2 * j]
  local r = now[i]
  if r == nil and live[i] then  -- parse the live part (written by encode_live)
    local v = live[i]
    local n = byte(v, 1)
    if not n or #v ~= 32 + 8 * n then return {'fallback'} end
    r = {sunpack(FMT[n] or layout(n), v)}
    r[H + n] = nil  -- the position after the part
    local s, o = r[STATE], r[ORIGIN]
    if (s ~= ACTIVE and s ~= STAGED and s ~= RETIRED) or (o ~= SEED and o ~= SYNTHETIC) then
      return {'fallback'}
    end
    if r[FLAGS] % 4 >= 2 then old_mean[i] = r[MEAN] end  -- flag 2: a mean
    now[i] = r
  end
  local code
  if r == nil then code = 'u'
  elseif mean ~= mean then code = 's'
  elseif r[STATE] ~= ACTIVE then code = 'n'
  elseif r[FLAGS] % 2 == 1 and r[SEEN] == step then code = 'd'  -- flag 1: a seen step
  else
    code = 'a'
    -- rods.pool.apply_report
    r[VISITS], r[MEAN], r[VAR], weight[i] = r[VISITS] + 1, mean, var, weight_of[j]
    if r[FLAGS] % 2 == 0 or step > r[SEEN] then r[SEEN] = step end
    r[FLAGS] = 7
    r[H + r[N]], r[N] = mean, r[N] + 1
    while r[N] > k do
      table.remove(r, H)
      r[N] = r[N] - 1
    end
    -- rods.pool.retire_reason_after_report
    local why
    if r[ORIGIN] ~= SEED or seeds_can_retire then
      if r[ORIGIN] == SYNTHETIC and r[VISITS] == 1 and mean < trial_below then
        why = 'trial'
      elseif r[N] >= min_obs then
        -- "recent r̄" against the thresholds: a plain sum decides unless it lies within far
        -- more than its rounding error of one; then math.fsum's exact value does
        local n, sum, sabs = r[N], 0.0, 0.0
        for q = H, H + n - 1 do
          sum, sabs = sum + r[q], sabs + abs(r[q])
        end
        local recent, margin = sum / n, 1e-9 * (sabs / n + 1.0)
        if abs(recent - mastered_above) <= margin or abs(recent - hard_below) <= margin then
          recent = exact_recent(r)
        end
        if recent > mastered_above then why = 'mastered'
        elseif recent < hard_below then why = 'hard' end
      end
    end
    if why then
      r[STATE], reason[i] = RETIRED, why
      retired[#retired + 1] = ids[i]
      retired[#retired + 1] = why
    end
    if not changed[i] then
      changed[i] = true
      order[#order + 1] = i
    end
  end
  codes[j] = code
end

-- every new part first (so a layout surprise still writes nothing), then the writes
local gone = {}
for _, i in ipairs(order) do
  if reason[i] then gone[#gone + 1] = ids[i] end
end
local details = #gone > 0 and read('HMGET', KEYS[5], gone) or {}
local deltas, hlive, hdetails, ev_details, zadd = {}, {}, {}, {}, {}
local function add(key, d) deltas[key] = (deltas[key] or 0) + d end
local g = 0
for _, i in ipairs(order) do
  local r, id = now[i], ids[i]
  hlive[#hlive + 1] = id
  hlive[#hlive + 1] = spack(FMT[r[N]] or layout(r[N]), unpack(r))
  if reason[i] then
    local origin = r[ORIGIN] == SEED and 'seed' or 'synthetic'
    g = g + 1
    local text, tail = details[g], '"retired_step":null,"retired_reason":null}'
    if not text or sub(text, -#tail) ~= tail then return {'fallback'} end
    local rec = cjson.decode(text)
    if type(rec.category) ~= 'string' or type(rec.generation) ~= 'number' then
      return {'fallback'}
    end
    text = sub(text, 1, -#tail - 1) .. '"retired_step":' .. step_text .. ',"retired_reason":"'
      .. reason[i] .. '"}'
    hdetails[#hdetails + 1] = id
    hdetails[#hdetails + 1] = text
    ev_details[#ev_details + 1] = text
    local dims = {'', '/origin/' .. origin, '/category/' .. rec.category,
      '/generation/' .. string.format('%d', rec.generation)}
    for _, dim in ipairs(dims) do
      add('active' .. dim, -1)
      add('retired' .. dim, 1)
    end
    add('active/region/' .. region(old_mean[i]), -1)
    add('retired/region/' .. region(r[MEAN]), 1)
    add('retired/reason/' .. reason[i], 1)
  else
    zadd[#zadd + 1] = weight[i]
    zadd[#zadd + 1] = id
    local from, to = region(old_mean[i]), region(r[MEAN])
    if from ~= to then
      add('active/region/' .. from, -1)
      add('active/region/' .. to, 1)
    end
  end
end
batched('HSET', KEYS[6], hlive)
batched('ZADD', KEYS[2], zadd)
if #gone > 0 then
  batched('HSET', KEYS[5], hdetails)
  batched('ZREM', KEYS[2], gone)
  batched('SADD', KEYS[3], gone)
end
for key, d in pairs(deltas) do
  if d ~= 0 and redis.call('HINCRBY', KEYS[1], key, d) == 0 then
    redis.call('HDEL', KEYS[1], key)
  end
end
if #order > 0 then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[3], '*', '@EVENT@', ARGV[2],
    '@RECORDS@', '[' .. table.concat(ev_details, ',') .. ']', '@LIVE@', table.concat(hlive, '\\30'))
end
local reply = {table.concat(codes)}
for _, v in ipairs(retired) do reply[#reply + 1] = v end
return reply
"""
)


def _fields(script: str) -> str:
    return (
        script.replace("@EVENT@", EVENT_FIELD)
        .replace("@RECORDS@", RECORDS_FIELD)
        .replace("@LIVE@", LIVE_FIELD)
    )


APPLY, REPORT = _fields(APPLY), _fields(REPORT)


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
        self._raw = _binary_twin(r)  # the live parts are binary: read them without decoding
        self.keys = RunKeys(run)
        self.events_maxlen = events_maxlen
        self._apply_script = r.register_script(APPLY)
        self._report_script = r.register_script(REPORT)
        self.report_fallbacks = 0  # reports the script handed back to the generic path (a metric)
        self._check_layout()
        d = self.rules.detector
        self._rules_arg = SEP.join(
            [
                repr(self.rules.trial_below),
                repr(self.rules.retire_mastered_above),
                repr(self.rules.retire_hard_below),
                str(self.rules.min_obs),
                str(self.rules.history_k),
                "1" if self.rules.seeds_can_retire else "0",
                repr(d.hard_below),
                repr(d.mastered_above),
            ]
        )

    def _check_layout(self) -> None:
        """A run stored by RODS before records had two parts (one `rec:<id>` key per task) has
        counters but no `records` hash, or is part-way through `migrate_layout`: refuse it with
        what to do, rather than report into it."""
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
        args = [len(cs.changes), len(cs.guards), len(deltas), cs.event_header(), *cs.event_body()]
        args += [self.events_maxlen, cs.request_id or "", cs.seq_floor, SEP.join(fields)]
        args += [b"".join(old_live), b"".join(new_live)]
        return self._apply_script(keys=keys, args=args)  # type: ignore[return-value]

    def _report(self, reports: Sequence[Scored], step: int) -> ReportResult:
        """One call of the `REPORT` script: the rules of `rods.pool` applied server-side.

        Falls back to the generic plan-and-compare-and-set path (same rules in Python) for inputs
        the script does not take: an infinite mean, or a non-finite variance of a scored group,
        and stored parts not in the layout `rods.store.changes` writes (the script then writes
        nothing)."""
        if not reports:
            return ReportResult()
        floor, isnan, isfinite = self.rules.weight_floor, math.isnan, math.isfinite
        text: list[str] = []
        numbers: list[float] = []
        for rep in reports:
            mean, var = rep.reward_mean, rep.reward_var
            if isnan(mean):
                text += (rep.task_id, "")  # unscored: the variance is not used
            elif isfinite(mean) and isfinite(var):
                text += (rep.task_id, repr(boundary_weight(mean, floor)))
            else:
                return super()._report(reports, step)
            numbers += (mean, var)
        if any(SEP in t for t in text[::2]):
            return super()._report(reports, step)
        k = self.keys
        header = event_header("report", step, time.time())
        keys = [k.counts, k.active, k.retired, k.events, k.records, k.live]
        args = [step, header, self.events_maxlen, self._rules_arg, SEP.join(text) + SEP]
        args.append(struct.pack(f"<{len(numbers)}d", *numbers))
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
        def text(f: dict[bytes, bytes], name: str) -> str:
            return f.get(name.encode(), b"").decode()

        return [
            decode_event(
                text(f, EVENT_FIELD), text(f, RECORDS_FIELD), f.get(LIVE_FIELD.encode(), b"")
            )
            for _, f in self._raw.xrange(self.keys.events, count=count)
        ]

    def is_request_done(self, request_id: str) -> bool:
        return bool(self.r.sismember(self.keys.requests_done, request_id))

    def drop_run(self) -> int:
        """Delete every key of this run (tests, maintenance). Returns the number deleted."""
        n = 0
        for key in self.r.scan_iter(match=self.keys.pattern, count=1000):
            n += int(self.r.delete(key))
        return n


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


_TWINS: weakref.WeakKeyDictionary[redis.Redis, redis.Redis] = weakref.WeakKeyDictionary()
_TWINS_LOCK = threading.Lock()


def _binary_twin(r: redis.Redis) -> redis.Redis:
    """A client with `r`'s settings whose replies are not decoded (one per client, shared by
    every buffer made from it: the synthesis service makes one buffer per request)."""
    with _TWINS_LOCK:
        twin = _TWINS.get(r)
        if twin is None:
            pool = r.connection_pool
            kwargs = {**pool.connection_kwargs, "decode_responses": False}
            twin = redis.Redis(
                connection_pool=redis.ConnectionPool(
                    connection_class=pool.connection_class, **kwargs
                )
            )
            _TWINS[r] = twin
        return twin


def _check_id(task_id: str) -> None:
    if SEP in task_id:
        raise ValueError(f"task id {task_id!r} contains a control character")
