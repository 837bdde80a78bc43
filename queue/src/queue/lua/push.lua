-- apalis-redis's push_job for many tasks at once, at the tail or the head.
-- KEYS: data hash, active list, signal list; ARGV: "back"|"front", then pairs of (task id, task)
local pushed = 0
local command = ARGV[1] == "front" and "lpush" or "rpush"
for i = 2, #ARGV, 2 do
  if redis.call("hsetnx", KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then
    redis.call(command, KEYS[2], ARGV[i])
    pushed = pushed + 1
  end
end
if pushed > 0 then
  redis.call("del", KEYS[3])
  redis.call("lpush", KEYS[3], 1)
end
return pushed
