-- KEYS: the consumer's in-flight set, active list; ARGV: task id
if redis.call("srem", KEYS[1], ARGV[1]) == 1 then
  redis.call("rpush", KEYS[2], ARGV[1])
  return 1
end
return 0
