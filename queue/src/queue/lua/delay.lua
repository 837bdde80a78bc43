-- Stores tasks that may start only later in the queue's delayed set,
-- scored by the time they fall due (Unix ms; apalis's own `:scheduled`
-- counts whole seconds and promotes a few at a time).
-- KEYS: data hash; ARGV: namespace, then triples of (task id, task body,
-- due at in Unix ms). A task id already stored is left as it is (a
-- duplicate push).
local delayed = ARGV[1] .. ":delayed"
local stored = 0
for i = 2, #ARGV, 3 do
  if redis.call("hsetnx", KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then
    redis.call("zadd", delayed, ARGV[i + 2], ARGV[i])
    stored = stored + 1
  end
end
return stored
