-- Pauses or resumes one tenant in one queue. A paused tenant leaves the
-- ring (nothing of it is taken) and keeps its waiting set in order; on
-- resume it re-enters at the current virtual time.
-- ARGV: namespace, tenant, "pause"|"resume"
local ns, tenant = ARGV[1], ARGV[2]
if ARGV[3] == "pause" then
  redis.call("sadd", ns .. ":fair:paused", tenant)
  redis.call("zrem", ns .. ":fair:ring", tenant)
else
  redis.call("srem", ns .. ":fair:paused", tenant)
  if redis.call("zcard", tenant_key(ns, tenant)) > 0 then
    enter_ring(ns, tenant)
  end
end
return 1
