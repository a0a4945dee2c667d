-- Drop a job a worker holds without running it again, only if it is still in the in-flight list: one that
-- expired before it started (``expires_in``), or one that was cancelled. Counted in KEYS[2], not as
-- processed and not as failed.
-- KEYS[1] the in-flight list  KEYS[2] stat:expired or stat:cancelled  KEYS[3] the job's cancellation flag
-- (deleted; any key when there is none)  ARGV[1] the payload as it is in the in-flight list
-- ARGV[2] the key prefix, ARGV[3] the bid and ARGV[4] the jid of a job of a batch (workerkit.batch; absent
-- otherwise): it counts as failed there, never to succeed.
-- Returns 1 if dropped, 0 if it was gone.
if redis.call('LREM', KEYS[1], -1, ARGV[1]) == 0 then return 0 end
redis.call('INCR', KEYS[2])
redis.call('DEL', KEYS[3])
if ARGV[3] then batch_member_failed(ARGV[2], ARGV[3], ARGV[4], false) end
return 1
