-- The conditional batch write of state/redis_store.py (RedisStore.apply) and of its JVM twin
-- stream/jvm/.../RedisApply.java: one script, read by both, so the two writers cannot drift.
--
-- KEYS: the keys. ARGV: version, envelope bytes, ttl seconds (0 = none), changelog member
-- ("" = none), per key; the changelog sorted set is the last ARGV. A key is written when the
-- update's version is not below the stored envelope's (which starts with {"v":<int>); returns
-- how many keys were written.
local applied = 0
local log = ARGV[#ARGV]
for i, key in ipairs(KEYS) do
  local base = (i - 1) * 4
  local ver = tonumber(ARGV[base + 1])
  -- only the envelope's head: {"v": and at most 19 digits (copying whole values into Lua
  -- cost the writer more than the write itself); "" when the key does not exist
  local head = redis.call('GETRANGE', key, 0, 31)
  local older = false
  local cv = tonumber(string.match(head, '^{"v":(%d+)'))
  if cv and cv > ver then older = true end
  if not older then
    local ttl = tonumber(ARGV[base + 3])
    if ttl > 0 then
      redis.call('SET', key, ARGV[base + 2], 'EX', ttl)
    else
      redis.call('SET', key, ARGV[base + 2])
    end
    if ARGV[base + 4] ~= '' then
      redis.call('ZADD', log, ver, ARGV[base + 4])
    end
    applied = applied + 1
  end
end
return applied
