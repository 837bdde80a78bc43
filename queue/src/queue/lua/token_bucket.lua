-- Takes tokens from each request's bucket: up to the number asked for, at
-- least one, or none when not one is left. A bucket refills at `rate` per
-- second up to `burst`; the clock is Redis's own, so every API process
-- agrees. Requests are taken in order, so a batch answers as the same
-- requests one by one would; each bucket is written once.
-- KEYS: each request's bucket (hash: tokens, at_ms); ARGV: rate, burst, wanted of each request
-- Returns, per request: tokens taken, tokens left (floor), ms until a token is back (0 if any taken), ms until full
local time = redis.call("time")
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local tokens, full_in, out = {}, {}, {}
for i, key in ipairs(KEYS) do
  local rate, burst, wanted = tonumber(ARGV[i * 3 - 2]), tonumber(ARGV[i * 3 - 1]), tonumber(ARGV[i * 3])
  local left = tokens[key]
  if left == nil then
    local state = redis.call("hmget", key, "tokens", "at_ms")
    left = tonumber(state[1]) or burst
    left = math.min(burst, left + math.max(0, now - (tonumber(state[2]) or now)) * rate / 1000)
  end
  local taken, wait = 0, 0
  if left >= 1 then
    taken = math.min(wanted, math.floor(left))
    left = left - taken
  else
    wait = math.ceil((1 - left) * 1000 / rate)
  end
  tokens[key] = left
  full_in[key] = math.ceil((burst - left) * 1000 / rate)
  out[#out + 1] = taken
  out[#out + 1] = math.floor(left)
  out[#out + 1] = wait
  out[#out + 1] = full_in[key]
end
for key, left in pairs(tokens) do
  redis.call("hset", key, "tokens", tostring(left), "at_ms", now)
  redis.call("pexpire", key, full_in[key] + 1000)
end
return out
