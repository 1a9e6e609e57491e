-- apply: one buffer write, compare-and-set, all or nothing (rods.store.buffer.RedisBuffer._apply).
--
-- Writes a planned `ChangeSet` (rods.store.changes) only if both parts of every record it
-- changes are still exactly what the plan read and every guarded counter still has its planned
-- value; else writes nothing and returns 'conflict' (the caller re-reads and re-plans).
--
-- KEYS  1 counts [hash]   2 active [zset]   3 staged [set]   4 retired [set]   5 tasks [hash]
--       6 events [stream]   7 requests_done [set]   8 seq [string]
--       9 records [hash: details parts]   10 live [hash: live parts]
-- ARGV  1 n_changes   2 n_guards   3 n_deltas
--       4 event header JSON   5 the event's records field   6 its live field (ChangeSet.event_body)
--       7 events maxlen (approximate)   8 boundary request id ('' none)   9 seq floor (0 none)
--       10 these fields joined by 0x1e:
--          9 per change: task id, old details ('' = the record must not exist), length of the
--            old live part, new details, length of the new live part, old state ('' none),
--            new state, sample weight, task body ('' none);
--          then 2 per guard (counter, value), then 2 per counter delta (counter, increment)
--       11 the old live parts concatenated   12 the new live parts concatenated
--          (binary, hence arguments of their own; cut by the lengths above)
-- Returns 'ok', 'conflict', or 'done' (the request id was applied before: nothing written).
-- @EVENT@, @RECORDS@, @LIVE@ are the events stream's field names (rods.store.keys), filled in
-- by rods.store.scripts when the file is loaded.

-- split a 0x1e-joined argument
local function split(s)
  local f, pos = {}, 1
  while true do
    local i = string.find(s, '\30', pos, true)
    if not i then f[#f + 1] = string.sub(s, pos); return f end
    f[#f + 1] = string.sub(s, pos, i - 1)
    pos = i + 1
  end
end
-- a command over a long argument list, 500 arguments per call (Lua's unpack has a stack limit)
local function batched(cmd, key, args)
  for b = 1, #args, 500 do
    redis.call(cmd, key, unpack(args, b, math.min(b + 499, #args)))
  end
end
-- the same for a command with one reply element per argument (HMGET), replies concatenated
local function read(cmd, key, args)
  local out = {}
  for b = 1, #args, 500 do
    local got = redis.call(cmd, key, unpack(args, b, math.min(b + 499, #args)))
    for j = 1, #got do out[#out + 1] = got[j] end
  end
  return out
end

local nc, ng, nd = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local rid = ARGV[8]
if rid ~= '' and redis.call('SISMEMBER', KEYS[7], rid) == 1 then return 'done' end
local f = split(ARGV[10])
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
