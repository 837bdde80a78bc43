-- Marks tasks done: out of their consumer's in-flight set, into the done
-- set, and no longer counted against their tenant's cap.
-- KEYS: done zset; ARGV: namespace, now, then pairs of (in-flight set, task id)
local ns = ARGV[1]
local acked = 0
for i = 3, #ARGV, 2 do
  release_slot(ns, ARGV[i + 1])
  if redis.call("srem", ARGV[i], ARGV[i + 1]) == 1 then
    redis.call("zadd", KEYS[1], ARGV[2], ARGV[i + 1])
    acked = acked + 1
  end
end
return acked
