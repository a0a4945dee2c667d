-- Move many jobs out of one sorted set (schedule, retry or dead), each as move_entry.lua moves one: to its
-- queue, or to the dead set. The dashboard's bulk actions (run, retry or kill every job of a filter).
--
-- KEYS[1]  the source ZSET
-- KEYS[2]  the `queues` SET
-- KEYS[3]  the dead ZSET
-- ARGV[1]  the key prefix: a job's queue LIST is <prefix>queue:<name> (on a Cluster the prefix is the
--          hash tag every key carries)
-- ARGV[2]  the dead set's size limit, ARGV[3] the score below which dead jobs expire (when any is killed)
-- then four values per move, from ARGV[4]: the member as stored in the source, the payload to write at
-- the destination, "queue" or "dead", and the queue name ("queue") or the score in the dead set ("dead")
--
-- Returns how many jobs this call moved: each move's ZREM decides, so a job another click or the poller
-- took meanwhile is skipped, never moved twice, never lost. The dead set is trimmed once, at the end.
local moved, buried = 0, false
for i = 4, #ARGV, 4 do
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    moved = moved + 1
    if ARGV[i + 2] == 'queue' then
      enqueue(KEYS[2], ARGV[1] .. 'queue:' .. ARGV[i + 3], ARGV[i + 3], ARGV[i + 1], false)
    else
      redis.call('ZADD', KEYS[3], ARGV[i + 3], ARGV[i + 1])
      buried = true
    end
  end
end
if buried then trim_dead(KEYS[3], ARGV[2], ARGV[3]) end
return moved
