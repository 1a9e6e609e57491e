-- publish: boundary requests, each at most once and never within a task's cooldown
-- (rods.store.stream.BoundaryStream.publish).
--
-- Per request: skipped if its task was published fewer than `cooldown` steps before; else its
-- dedup marker is set (NX, with a TTL) and, only if that marker was new, the request is XADDed
-- and its step recorded as the task's last.
--
-- KEYS  1 boundary [stream]   2 boundary:last [hash: task id → last published step]
--       2 + i the seen marker of request i [string, TTL]
-- ARGV  1 stream maxlen (approximate)   2 dedup TTL (s)   3 cooldown steps
--       then 3 per request: task id, policy step, request JSON
-- Returns the 1-based indices of the requests published.
-- @REQUEST@ is the stream's field name (rods.store.keys), filled in by rods.store.scripts.

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
