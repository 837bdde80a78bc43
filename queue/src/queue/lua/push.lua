-- Stores tasks and places each in its tenant's waiting set.
-- KEYS: data hash; ARGV: namespace, "back"|"front", then quadruples of
-- (task id, task body, tenant, priority). A task id already stored is left
-- as it is (a duplicate push).
-- A call is a few commands whatever its size (HMGET, HSET, INCRBY, then a
-- ZADD per tenant): a bulk submission's thousand tasks as three commands
-- each took Redis, and its append-only file, several times longer.
local ns, front = ARGV[1], ARGV[2] == "front"
local ids = {}
for i = 3, #ARGV, 4 do ids[#ids + 1] = ARGV[i] end
if #ids == 0 then return 0 end
local stored = redis.call("hmget", KEYS[1], unpack(ids))
-- `new`: the ARGV position of each task to store, in order.
local fields, new, seen = {}, {}, {}
for n, id in ipairs(ids) do
  if not stored[n] and not seen[id] then
    seen[id] = true
    local i = 3 + (n - 1) * 4
    fields[#fields + 1] = id
    fields[#fields + 1] = ARGV[i + 1]
    new[#new + 1] = i
  end
end
if #new == 0 then return 0 end
redis.call("hset", KEYS[1], unpack(fields))
local first = redis.call("incrby", ns .. ":fair:seq", #new) - #new
local members, tenants = {}, {}
for k, i in ipairs(new) do
  local tenant = ARGV[i + 2]
  if not members[tenant] then
    members[tenant] = {}
    tenants[#tenants + 1] = tenant
  end
  local list = members[tenant]
  list[#list + 1] = rank(ARGV[i + 3], first + k, front)
  list[#list + 1] = ARGV[i]
end
for _, tenant in ipairs(tenants) do
  redis.call("zadd", tenant_key(ns, tenant), unpack(members[tenant]))
  has_work(ns, tenant)
end
return #new
