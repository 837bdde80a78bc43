-- Stores tasks and places each in its tenant's waiting set.
-- KEYS: data hash; ARGV: namespace, "back"|"front", then quadruples of
-- (task id, task body, tenant, priority). A task id already stored is left
-- as it is (a duplicate push).
local ns, front = ARGV[1], ARGV[2] == "front"
local pushed, entered = 0, {}
for i = 3, #ARGV, 4 do
  if redis.call("hsetnx", KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then
    local tenant = ARGV[i + 2]
    place(ns, ARGV[i], tenant, ARGV[i + 3], front, entered[tenant])
    entered[tenant] = true
    pushed = pushed + 1
  end
end
return pushed
