-- KEYS: done zset; ARGV: now, then pairs of (in-flight set, task id)
local acked = 0
for i = 2, #ARGV, 2 do
  if redis.call("srem", ARGV[i], ARGV[i + 1]) == 1 then
    redis.call("zadd", KEYS[1], ARGV[1], ARGV[i + 1])
    acked = acked + 1
  end
end
return acked
