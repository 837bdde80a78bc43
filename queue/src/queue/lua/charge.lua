-- Charges a tenant's usage against its quotas, all or nothing.
-- KEYS: one usage hash per kind (tenant -> used in the period)
-- ARGV: tenant, then for each key: amount, limit (0: none), seconds to keep the hash
-- A kind is refused when its limit is set and the amount would pass it, or
-- it is used up already (an amount of 0 only asks that).
-- Returns: {0} when charged, or {index of the refused kind (1-based), used}.
local tenant = ARGV[1]
for i, key in ipairs(KEYS) do
  local amount, limit = tonumber(ARGV[i * 3 - 1]), tonumber(ARGV[i * 3])
  if limit > 0 and amount >= 0 then
    local used = tonumber(redis.call("hget", key, tenant)) or 0
    if used + amount > limit or used >= limit then
      return {i, used}
    end
  end
end
for i, key in ipairs(KEYS) do
  local amount = tonumber(ARGV[i * 3 - 1])
  if amount ~= 0 then
    redis.call("hincrby", key, tenant, amount)
    redis.call("expire", key, tonumber(ARGV[i * 3 + 1]))
  end
end
return {0}
