-- Gives a stopping consumer's unstarted tasks back, each at the front of its
-- band (it keeps its turn), and unregisters the consumer.
-- KEYS: the consumer's in-flight set, consumers zset, data hash; ARGV: namespace
local ids = redis.call("smembers", KEYS[1])
place_ids(ARGV[1], KEYS[3], ids, true)
redis.call("del", KEYS[1])
redis.call("zrem", KEYS[2], KEYS[1])
return #ids
