-- Peyk's fair waiting room for one queue, shared by the scripts that place
-- and take tasks (prepended to each of them). NS is the queue's namespace
-- (`{prefix}:{job_type}`), passed as an argument; keys are built from it:
--   NS:fair:t:<tenant>  zset   task id -> rank: a band per priority level
--                              (highest first), FIFO within a band
--   NS:fair:ring        zset   tenant -> pass (virtual time): the tenants
--                              with work that are not paused
--   NS:fair:waiting     set    tenants with a non-empty zset, paused or not
--   NS:fair:vtime       string the pass of the tenant served last
--   NS:fair:seq         string sequence for FIFO order within a band
--   NS:fair:paused      set    tenants paused in this queue
--   NS:paused           string present while the whole queue is paused
--   NS:fair:caps        hash   tenant -> most tasks it may have taken at once
--   NS:fair:running     hash   tenant -> tasks taken and not yet acknowledged
--                              (kept for capped tenants only)
--   NS:fair:owner       hash   task id -> tenant, for the tasks counted there
--   NS:fair:capped      set    tenants out of the ring because at their cap
-- A tenant with work gets one task per turn: the ring's lowest pass is
-- served and its pass grows by 1/weight, so tenants share the workers in
-- proportion to their weights however long each one's backlog is. A tenant
-- that had no work enters at the current virtual time: it is served next,
-- and cannot bank turns it did not use.
local MAX_PRIORITY = 10
local BAND = 17592186044416 -- 2^44 ranks per priority level
local MIDDLE = 8796093022208 -- 2^43: the front of a band grows down from here, the back up

local function tenant_key(ns, tenant)
  return ns .. ":fair:t:" .. tenant
end

local function enter_ring(ns, tenant)
  if redis.call("sismember", ns .. ":fair:paused", tenant) == 0
    and redis.call("sismember", ns .. ":fair:capped", tenant) == 0 then
    local vtime = redis.call("get", ns .. ":fair:vtime") or "0"
    redis.call("zadd", ns .. ":fair:ring", "NX", vtime, tenant)
  end
end

-- How many more tasks a tenant may take now (nil: no cap).
local function room(ns, tenant)
  local cap = tonumber(redis.call("hget", ns .. ":fair:caps", tenant))
  if not cap then return nil end
  local running = tonumber(redis.call("hget", ns .. ":fair:running", tenant)) or 0
  return cap - running
end

-- A taken task stops counting against its tenant's cap (acknowledged, or
-- back to waiting); a tenant held at its cap re-enters the ring.
local function release_slot(ns, task_id)
  local tenant = redis.call("hget", ns .. ":fair:owner", task_id)
  if not tenant then return end
  redis.call("hdel", ns .. ":fair:owner", task_id)
  if redis.call("hincrby", ns .. ":fair:running", tenant, -1) <= 0 then
    redis.call("hdel", ns .. ":fair:running", tenant)
  end
  local left = room(ns, tenant)
  if (left == nil or left > 0) and redis.call("srem", ns .. ":fair:capped", tenant) == 1 then
    if redis.call("zcard", tenant_key(ns, tenant)) > 0 then enter_ring(ns, tenant) end
  end
end

-- A task's rank in its tenant's waiting set: its priority band, then the
-- back of the band (or the front: a task handed back unstarted keeps its
-- turn) by `seq`, the queue's sequence number taken for it.
local function rank(priority, seq, front)
  local level = math.floor(tonumber(priority) or 0)
  if level < 0 then level = 0 elseif level > MAX_PRIORITY then level = MAX_PRIORITY end
  return (MAX_PRIORITY - level) * BAND + MIDDLE + (front and -seq or seq)
end

-- A tenant just given tasks: it has work, and takes its turn in the ring.
local function has_work(ns, tenant)
  redis.call("sadd", ns .. ":fair:waiting", tenant)
  enter_ring(ns, tenant)
end

-- Puts one task in its tenant's waiting set (see `rank`).
local function place(ns, task_id, tenant, priority, front)
  local seq = redis.call("incr", ns .. ":fair:seq")
  redis.call("zadd", tenant_key(ns, tenant), rank(priority, seq, front), task_id)
  has_work(ns, tenant)
end

-- The tenant and priority a stored task carries (`args` of the apalis task
-- body). Tasks queued before fairness existed carry neither: they share the
-- tenant "-" at priority 0.
local function describe(body)
  local ok, task = pcall(cjson.decode, body)
  local args = ok and type(task) == "table" and type(task.args) == "table" and task.args or {}
  local tenant = type(args.tenant) == "string" and args.tenant or "-"
  local priority = type(args.priority) == "number" and args.priority or 0
  return tenant, priority
end

-- Places tasks by id (their bodies in the data hash); ids without a body
-- are stale and dropped (the sweeper restores from PostgreSQL what is lost).
local function place_ids(ns, data_hash, ids, front)
  if #ids == 0 then return 0 end
  local bodies = redis.call("hmget", data_hash, unpack(ids))
  local placed = 0
  for i, id in ipairs(ids) do
    release_slot(ns, id)
    if bodies[i] then
      local tenant, priority = describe(bodies[i])
      place(ns, id, tenant, priority, front)
      placed = placed + 1
    end
  end
  return placed
end
