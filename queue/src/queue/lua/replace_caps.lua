-- Replaces a queue's caps on tenants' running tasks, and lets back into the
-- ring the tenants that a raised or removed cap no longer holds.
-- ARGV: namespace, then pairs of (tenant, cap)
local ns = ARGV[1]
redis.call("del", ns .. ":fair:caps")
for i = 2, #ARGV, 2 do
  redis.call("hset", ns .. ":fair:caps", ARGV[i], ARGV[i + 1])
end
for _, tenant in ipairs(redis.call("smembers", ns .. ":fair:capped")) do
  local left = room(ns, tenant)
  if left == nil or left > 0 then
    redis.call("srem", ns .. ":fair:capped", tenant)
    if redis.call("zcard", tenant_key(ns, tenant)) > 0 then enter_ring(ns, tenant) end
  end
end
-- Counts of tenants no longer capped are not needed any more.
for _, tenant in ipairs(redis.call("hkeys", ns .. ":fair:running")) do
  if redis.call("hexists", ns .. ":fair:caps", tenant) == 0 then
    redis.call("hdel", ns .. ":fair:running", tenant)
  end
end
return 1
