-- KEYS: this worker's inflight set, active list, consumers zset, signal list
local ids = redis.call("smembers", KEYS[1])
for _, id in ipairs(ids) do
  redis.call("lpush", KEYS[2], id)
end
redis.call("del", KEYS[1])
redis.call("zrem", KEYS[3], KEYS[1])
if #ids > 0 then
  redis.call("del", KEYS[4])
  redis.call("lpush", KEYS[4], 1)
end
return #ids
