-- Enqueue one tick of a periodic job exactly once across every process and host.
--
-- KEYS[1]  the tick's lock key (periodic:<name>:<tick>), SET NX EX: whoever sets it enqueues the tick
-- KEYS[2]  the `queues` SET
-- KEYS[3]  the job's queue LIST
-- KEYS[4]  the `periodic` HASH (name -> JSON record shown by the dashboard)
-- ARGV[1]  lock TTL in seconds
-- ARGV[2]  queue name
-- ARGV[3]  job payload (JSON)
-- ARGV[4]  periodic job name
-- ARGV[5]  record JSON with last_run set (written when this call enqueued the tick)
-- ARGV[6]  record JSON without last_run (written only if the job has no record yet)
-- ARGV[7]  "1" to try to enqueue the tick, "0" to only publish the record
--
-- Returns 1 if this call enqueued the tick, else 0. Lock, push and record happen in one script,
-- so a tick is never enqueued twice and never marked done without its job being pushed.

if ARGV[7] == "1" and redis.call("SET", KEYS[1], "1", "NX", "EX", tonumber(ARGV[1])) then
  enqueue(KEYS[2], KEYS[3], ARGV[2], ARGV[3], false)
  redis.call("HSET", KEYS[4], ARGV[4], ARGV[5])
  return 1
end
redis.call("HSETNX", KEYS[4], ARGV[4], ARGV[6])
return 0
