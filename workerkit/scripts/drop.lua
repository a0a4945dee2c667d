-- Drop a job a worker holds without running it again, only if it is still in the in-flight list: one that
-- expired before it started (``expires_in``), or one that was cancelled. Counted in KEYS[2], not as
-- processed and not as failed.
-- KEYS[1] the in-flight list  KEYS[2] stat:expired or stat:cancelled  KEYS[3] the job's cancellation flag
-- (deleted; any key when there is none)  ARGV[1] the payload as it is in the in-flight list
-- Returns 1 if dropped, 0 if it was gone.
if redis.call('LREM', KEYS[1], -1, ARGV[1]) == 0 then return 0 end
redis.call('INCR', KEYS[2])
redis.call('DEL', KEYS[3])
return 1
