-- Push one unique job, or refuse it as a duplicate: take its lock (SET NX with a TTL) and push it in one step.
-- KEYS[1] the lock STRING  KEYS[2] the queues SET  KEYS[3] the queue LIST or the schedule ZSET
-- KEYS[4] the duplicates counter (stat:unique_duplicates)
-- ARGV[1] the jid (the lock's value)  ARGV[2] the lock's TTL in ms  ARGV[3] "queue" or "schedule"
-- ARGV[4] the queue name  ARGV[5] the payload  ARGV[6] the score (epoch seconds, for "schedule")
-- Returns 1 when pushed, 0 when another job holds the lock (nothing pushed; the counter goes up).
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('INCR', KEYS[4])
  return 0
end
if ARGV[3] == 'schedule' then
  redis.call('ZADD', KEYS[3], ARGV[6], ARGV[5])
else
  enqueue(KEYS[2], KEYS[3], ARGV[4], ARGV[5], false)
end
return 1
