-- KEYS: done zset, dead zset, data hash, result hash; ARGV: cutoff (unix s), limit
local removed = 0
for i = 1, 2 do
  local ids = redis.call("zrangebyscore", KEYS[i], "-inf", ARGV[1], "LIMIT", 0, ARGV[2])
  for _, id in ipairs(ids) do
    redis.call("hdel", KEYS[3], id)
    redis.call("hdel", KEYS[4], id)
    redis.call("zrem", KEYS[i], id)
  end
  removed = removed + #ids
end
return removed
