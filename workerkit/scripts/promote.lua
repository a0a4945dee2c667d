-- Move due jobs from the schedule or retry ZSET to their queues, each exactly once across processes.
-- KEYS[1] the ZSET  KEYS[2] the queues SET  KEYS[2+i] queue list of the i-th job
-- ARGV[3i-2] member as stored  ARGV[3i-1] payload to push (with enqueued_at)  ARGV[3i] queue name
-- A job is pushed only if this call removed it from the ZSET. Returns how many jobs moved.
local moved = 0
for i = 1, #KEYS - 2 do
  if redis.call('ZREM', KEYS[1], ARGV[3 * i - 2]) == 1 then
    redis.call('SADD', KEYS[2], ARGV[3 * i])
    redis.call('LPUSH', KEYS[2 + i], ARGV[3 * i - 1])
    moved = moved + 1
  end
end
return moved
