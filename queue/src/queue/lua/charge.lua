-- Charges tenants' usage against their quotas: each charge all or nothing,
-- charges taken in order (a batch answers as the same charges one by one).
-- KEYS: the usage hashes (tenant -> used in the period), each charge's in turn
-- ARGV: for each charge: tenant, number of kinds n, then per kind: amount,
--       limit (0: none), seconds to keep the hash; the charge's n keys are
--       the next n of KEYS
-- A kind is refused when its limit is set and the amount would pass it, or
-- it is used up already (an amount of 0 only asks that).
-- Returns, per charge: 0, 0 when charged, or the index of the refused kind
-- (1-based) and what is used of it.
local out, arg, key = {}, 1, 1
while arg <= #ARGV do
  local tenant, n = ARGV[arg], tonumber(ARGV[arg + 1])
  local refused, used_of = 0, 0
  for i = 1, n do
    local amount, limit = tonumber(ARGV[arg + i * 3 - 1]), tonumber(ARGV[arg + i * 3])
    if refused == 0 and limit > 0 and amount >= 0 then
      local used = tonumber(redis.call("hget", KEYS[key + i - 1], tenant)) or 0
      if used + amount > limit or used >= limit then
        refused, used_of = i, used
      end
    end
  end
  if refused == 0 then
    for i = 1, n do
      local amount = tonumber(ARGV[arg + i * 3 - 1])
      if amount ~= 0 then
        redis.call("hincrby", KEYS[key + i - 1], tenant, amount)
        redis.call("expire", KEYS[key + i - 1], tonumber(ARGV[arg + i * 3 + 1]))
      end
    end
  end
  out[#out + 1] = refused
  out[#out + 1] = used_of
  arg = arg + 2 + n * 3
  key = key + n
end
return out
