-- Move one job out of a sorted set (schedule, retry or dead) atomically: to its queue, or to the dead set.
-- Used by the poller (due jobs) and by the dashboard (run now, retry now, kill), and to quarantine an
-- entry that cannot be read.
--
-- KEYS[1]  the source ZSET
-- KEYS[2]  the destination: the job's queue LIST, or the dead ZSET
-- KEYS[3]  the `queues` SET
-- ARGV[1]  the member as stored in the source
-- ARGV[2]  the payload to write at the destination
-- ARGV[3]  "queue" or "dead"
-- ARGV[4]  the queue name ("queue"), or the score in the dead set ("dead")
-- ARGV[5]  the dead set's size limit ("dead")
-- ARGV[6]  the score below which dead jobs expire ("dead")
--
-- Returns 1 if this call moved the job, 0 if it was gone already (moved by another poller or click):
-- the ZREM decides, so a job is never moved twice and never lost.
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
if ARGV[3] == 'queue' then
  enqueue(KEYS[3], KEYS[2], ARGV[4], ARGV[2], false)
else
  bury(KEYS[2], ARGV[2], ARGV[4], ARGV[5], ARGV[6])
end
return 1
