-- Moves up to `max` delayed tasks that fell due (by Redis's clock, the
-- one clock every worker shares) into their tenants' waiting sets.
-- KEYS: data hash; ARGV: namespace, max
-- Returns how late each task was moved (ms), for the lateness histogram.
local ns, max = ARGV[1], tonumber(ARGV[2])
local delayed = ns .. ":delayed"
local time = redis.call("time")
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local due = redis.call("zrangebyscore", delayed, "-inf", now, "WITHSCORES", "LIMIT", 0, max)
if #due == 0 then return {} end
local ids, late = {}, {}
for i = 1, #due, 2 do
  ids[#ids + 1] = due[i]
  late[#late + 1] = now - tonumber(due[i + 1])
end
redis.call("zrem", delayed, unpack(ids))
place_ids(ns, KEYS[1], ids, false)
return late
