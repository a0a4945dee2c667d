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

-- A job enters the dead set, which keeps jobs younger than `cutoff` and at most `max_jobs` of them.
local function bury(dead_key, member, score, max_jobs, cutoff)
  redis.call('ZADD', dead_key, score, member)
  redis.call('ZREMRANGEBYSCORE', dead_key, '-inf', '(' .. cutoff)
  redis.call('ZREMRANGEBYRANK', dead_key, 0, -(tonumber(max_jobs) + 1))
end

-- Count `n` finished jobs in a total counter and its daily twin (kept for five years).
local function count(total_key, day_key, n)
  if n > 0 then
    redis.call('INCRBY', total_key, n)
    redis.call('INCRBY', day_key, n)
    redis.call('EXPIRE', day_key, 157680000)
  end
end
