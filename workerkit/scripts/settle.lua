-- Settle a failed job that a worker holds: to the retry set, to the dead set, dropped, or deferred (a
-- limiter had no room: back to the schedule, counted neither as processed nor as failed).
-- KEYS[1] the in-flight list  KEYS[2] the retry, dead or schedule ZSET (unused when discarding)
-- KEYS[3] stat:processed  KEYS[4] stat:processed:<day>  KEYS[5] stat:failed  KEYS[6] stat:failed:<day>
-- ARGV[1] the payload as it is in the in-flight list  ARGV[2] "retry", "dead", "discard" or "defer"
-- ARGV[3] the member to store  ARGV[4] its score (due time, or time of death)
-- ARGV[5] the dead set's size limit  ARGV[6] the score below which dead jobs expire
-- ARGV[7] the key prefix, ARGV[8] the bid and ARGV[9] the jid of a job of a batch (workerkit.batch; absent
-- otherwise): a failure marks it failed in its batch, a death also fires the batch's death event; a
-- deferral changes nothing there.
-- Only the holder settles: when the LREM removes nothing (the job was recovered, given back or settled
-- already), nothing changes and 0 is returned, so a settlement retried after a lost reply lands once.
if redis.call('LREM', KEYS[1], -1, ARGV[1]) == 0 then return 0 end
if ARGV[2] == 'retry' or ARGV[2] == 'defer' then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
  if ARGV[2] == 'defer' then return 1 end
elseif ARGV[2] == 'dead' then
  bury(KEYS[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
end
if ARGV[8] then batch_member_failed(ARGV[7], ARGV[8], ARGV[9], ARGV[2] == 'dead') end
count(KEYS[3], KEYS[4], 1)
count(KEYS[5], KEYS[6], 1)
return 1
