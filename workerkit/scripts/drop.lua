-- Drop a job that expired before it started (``expires_in`` / ``expires_at``), only if it is still in the
-- in-flight list: take it out and count it in stat:expired (not processed, not failed).
-- KEYS[1] the in-flight list  KEYS[2] stat:expired  ARGV[1] the payload as it is in the in-flight list
-- Returns 1 if dropped, 0 if it was gone.
if redis.call('LREM', KEYS[1], -1, ARGV[1]) == 0 then return 0 end
redis.call('INCR', KEYS[2])
return 1
