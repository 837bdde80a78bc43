-- Takes up to `max` tasks for one consumer, fairly across tenants.
-- KEYS: consumers zset, active list, this consumer's in-flight set, data hash
-- ARGV: namespace, weights hash, max, this consumer's in-flight set name
-- Returns: pairs of (task id, task body).
--
-- apalis-redis still puts tasks on the active list (scheduled tasks that
-- fall due, tasks of dead consumers, released tasks): it is an inbox, sorted
-- here into the tenants' sets before anything is taken.
local ns, weights_hash, max = ARGV[1], ARGV[2], tonumber(ARGV[3])
if not redis.call("zscore", KEYS[1], ARGV[4]) then
  return redis.error_reply("consumer not registered")
end

local inbox = redis.call("lrange", KEYS[2], 0, 999)
if #inbox > 0 then
  redis.call("ltrim", KEYS[2], #inbox, -1)
  place_ids(ns, KEYS[4], inbox, false)
end

if max <= 0 or redis.call("exists", ns .. ":paused") == 1 then
  return {}
end

local ring = ns .. ":fair:ring"
local weights = {}
local taken = {}
while #taken < max do
  local head = redis.call("zrange", ring, 0, 1, "WITHSCORES")
  if #head == 0 then break end
  local tenant, pass = head[1], tonumber(head[2])
  local key = tenant_key(ns, tenant)
  -- Alone in the ring, a tenant gets all that is left in one call.
  local count = #head == 2 and (max - #taken) or 1
  local left = room(ns, tenant)
  if left ~= nil and left < count then count = left end
  local popped = {}
  if count > 0 then popped = redis.call("zpopmin", key, count) end
  for i = 1, #popped, 2 do
    taken[#taken + 1] = popped[i]
    if left ~= nil then redis.call("hset", ns .. ":fair:owner", popped[i], tenant) end
  end
  if left ~= nil and #popped > 0 then
    redis.call("hincrby", ns .. ":fair:running", tenant, #popped / 2)
  end
  redis.call("set", ns .. ":fair:vtime", pass)
  if left ~= nil and left - #popped / 2 <= 0 and redis.call("zcard", key) > 0 then
    -- At its cap: out of the ring until one of its tasks is acknowledged.
    redis.call("zrem", ring, tenant)
    redis.call("sadd", ns .. ":fair:capped", tenant)
  elseif redis.call("zcard", key) == 0 then
    redis.call("zrem", ring, tenant)
    redis.call("srem", ns .. ":fair:waiting", tenant)
  else
    local weight = weights[tenant]
    if not weight then
      weight = tonumber(redis.call("hget", weights_hash, tenant)) or 1
      if weight <= 0 then weight = 1 end
      weights[tenant] = weight
    end
    redis.call("zadd", ring, pass + (#popped / 2) / weight, tenant)
  end
end

if #taken == 0 then return {} end
redis.call("sadd", KEYS[3], unpack(taken))
local bodies = redis.call("hmget", KEYS[4], unpack(taken))
local result = {}
for i, id in ipairs(taken) do
  if bodies[i] then
    result[#result + 1] = id
    result[#result + 1] = bodies[i]
  else
    redis.call("srem", KEYS[3], id)
  end
end
return result
