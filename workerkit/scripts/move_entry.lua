-- Move one job out of a sorted set (schedule, retry or dead) atomically: to its queue, or to the dead set.
--
-- KEYS[1]  the source ZSET
-- KEYS[2]  the destination: the job's queue LIST, or the dead ZSET
-- KEYS[3]  the `queues` SET
-- ARGV[1]  the member as stored in the source (raw payload JSON)
-- ARGV[2]  the payload to write at the destination
-- ARGV[3]  "queue" or "dead"
-- ARGV[4]  the queue name ("queue"), or the score in the dead set ("dead")
-- ARGV[5]  the dead set's size limit ("dead")
-- ARGV[6]  the score below which dead jobs expire ("dead")
--
-- Returns 1 if this call moved the job, 0 if it was gone already (run by the poller, moved by another
-- click): the ZREM decides, so a job is never moved twice and never lost.

if redis.call("ZREM", KEYS[1], ARGV[1]) == 0 then
  return 0
end
if ARGV[3] == "queue" then
  redis.call("SADD", KEYS[3], ARGV[4])
  redis.call("LPUSH", KEYS[2], ARGV[2])
else
  redis.call("ZADD", KEYS[2], ARGV[4], ARGV[2])
  redis.call("ZREMRANGEBYSCORE", KEYS[2], "-inf", "(" .. ARGV[6])
  redis.call("ZREMRANGEBYRANK", KEYS[2], 0, -(tonumber(ARGV[5]) + 1))
end
return 1
