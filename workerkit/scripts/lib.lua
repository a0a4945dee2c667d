-- Shared by every lifecycle script (workerkit.keys.script prepends it): each state change that more than
-- one script makes is spelled here once.

-- A job reaches a queue: the queue is remembered in the `queues` SET, the payload goes to the push end
-- (LPUSH; workers take from the right), or to the pop end when `next` is true (it runs next).
local function enqueue(queues_key, queue_key, queue_name, payload, next)
  redis.call('SADD', queues_key, queue_name)
  if next then
    redis.call('RPUSH', queue_key, payload)
  else
    redis.call('LPUSH', queue_key, payload)
  end
end

-- Push ARGV[first..last] (payloads, in push order) to one queue: one SADD, then LPUSHes of up to 500 values
-- each, which leave the queue as pushing them one by one would (each value goes to the left in turn).
local function enqueue_many(queues_key, queue_key, queue_name, first, last)
  if last < first then return end
  redis.call('SADD', queues_key, queue_name)
  for i = first, last, 500 do
    redis.call('LPUSH', queue_key, unpack(ARGV, i, math.min(i + 499, last)))
  end
end

-- The dead set keeps jobs younger than `cutoff` and at most `max_jobs` of them.
local function trim_dead(dead_key, max_jobs, cutoff)
  redis.call('ZREMRANGEBYSCORE', dead_key, '-inf', '(' .. cutoff)
  redis.call('ZREMRANGEBYRANK', dead_key, 0, -(tonumber(max_jobs) + 1))
end

-- A job enters the dead set, which is trimmed as it goes.
local function bury(dead_key, member, score, max_jobs, cutoff)
  redis.call('ZADD', dead_key, score, member)
  trim_dead(dead_key, max_jobs, cutoff)
end

-- Count `n` finished jobs in a total counter and its daily twin (kept for five years).
local function count(total_key, day_key, n)
  if n > 0 then
    redis.call('INCRBY', total_key, n)
    redis.call('INCRBY', day_key, n)
    redis.call('EXPIRE', day_key, 157680000)
  end
end

-- Batches (workerkit.batch). The keys of batch <bid> hang off B = <prefix>batch:<bid>: the HASH B (open
-- blocks, parent, callbacks cb:<event> with their queues cbq:<event>, event times), and the SETs B:pending
-- (members not yet succeeded: jids, and b:<bid> for child batches), B:failed (pending members that failed
-- at least once) and B:dead (pending members that died). Each event fires once, decided by the HSETNX of
-- its time: complete when no block is open and every pending member failed (all ran at least once),
-- success when nothing is pending (and the creating block did not raise), death at the first death below.
-- A batch whose hash is gone (expired) is never recreated: every step reads it first. Its sets live as
-- long as its hash (30 days after its last block opened).

-- The server's clock as epoch seconds with microseconds (a string), and as epoch milliseconds.
local function server_time()
  local t = redis.call('TIME')
  return t[1] .. '.' .. string.format('%06d', tonumber(t[2])), t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000))
end

-- Push the batch's callback for `event`, if it has one: its payload was encoded when the batch was created,
-- without enqueued_at, which is added here (in the format the hash's `ms` field names).
local function batch_callback(prefix, b, event)
  local payload = redis.call('HGET', b, 'cb:' .. event)
  if not payload then return end
  local queue = redis.call('HGET', b, 'cbq:' .. event)
  local seconds, millis = server_time()
  local stamp = seconds
  if redis.call('HGET', b, 'ms') == '1' then stamp = millis end
  enqueue(prefix .. 'queues', prefix .. 'queue:' .. queue, queue,
          string.sub(payload, 1, -2) .. ',"enqueued_at":' .. stamp .. '}', false)
end

-- The first death in batch `bid` or below it: the death event, once, in it and in each parent.
local function batch_died(prefix, bid)
  local b = prefix .. 'batch:' .. bid
  if redis.call('EXISTS', b) == 0 or redis.call('HSETNX', b, 'died_at', (server_time())) == 0 then return end
  batch_callback(prefix, b, 'death')
  local parent = redis.call('HGET', b, 'parent')
  if parent then batch_died(prefix, parent) end
end

local batch_check

-- A member of batch `bid` (a jid, or b:<child bid>) failed (`died`: went to the dead set); it stays pending.
local function batch_member_failed(prefix, bid, member, died)
  local b = prefix .. 'batch:' .. bid
  if redis.call('SISMEMBER', b .. ':pending', member) == 0 then return end
  local ttl = redis.call('TTL', b)
  redis.call('SADD', b .. ':failed', member)
  if ttl > 0 then redis.call('EXPIRE', b .. ':failed', ttl) end
  if died then
    redis.call('SADD', b .. ':dead', member)
    if ttl > 0 then redis.call('EXPIRE', b .. ':dead', ttl) end
    batch_died(prefix, bid)
  end
  batch_check(prefix, bid)
end

-- A member of batch `bid` succeeded: it leaves the batch (once; a second acknowledgement finds nothing).
local function batch_member_done(prefix, bid, member)
  local b = prefix .. 'batch:' .. bid
  if redis.call('SREM', b .. ':pending', member) == 0 then return end
  redis.call('SREM', b .. ':failed', member)
  redis.call('SREM', b .. ':dead', member)
  batch_check(prefix, bid)
end

-- Fire what batch `bid` has reached: complete, then success (which ends it in its parent); a parent sees a
-- child that completed with failures as failed.
batch_check = function(prefix, bid)
  local b = prefix .. 'batch:' .. bid
  if tonumber(redis.call('HGET', b, 'open') or '1') > 0 then return end
  local pending = redis.call('SCARD', b .. ':pending')
  if pending > redis.call('SCARD', b .. ':failed') then return end
  local parent = redis.call('HGET', b, 'parent')
  local broken = redis.call('HEXISTS', b, 'error') == 1
  if redis.call('HSETNX', b, 'completed_at', (server_time())) == 1 then
    batch_callback(prefix, b, 'complete')
    if parent and (pending > 0 or broken) then batch_member_failed(prefix, parent, 'b:' .. bid, false) end
  end
  if pending == 0 and not broken and redis.call('HSETNX', b, 'succeeded_at', (server_time())) == 1 then
    batch_callback(prefix, b, 'success')
    if parent then batch_member_done(prefix, parent, 'b:' .. bid) end
  end
end
