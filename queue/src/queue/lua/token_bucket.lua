-- Takes one token from a bucket that refills at `rate` per second up to
-- `burst`; the clock is Redis's own, so every API process agrees.
-- KEYS: the bucket (hash: tokens, at_ms); ARGV: rate, burst
-- Returns: {allowed (0|1), tokens left (floor), ms until a token is back (0 if allowed), ms until full}
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local time = redis.call("time")
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local state = redis.call("hmget", KEYS[1], "tokens", "at_ms")
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
local allowed, wait = 0, 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
local full_in = math.ceil((burst - tokens) * 1000 / rate)
redis.call("hset", KEYS[1], "tokens", tostring(tokens), "at_ms", now)
redis.call("pexpire", KEYS[1], full_in + 1000)
return {allowed, math.floor(tokens), wait, full_in}
