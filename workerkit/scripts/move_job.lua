-- Move one job out of an in-flight list back to its queue, atomically, only if it is still there.
-- KEYS[1] in-flight list  KEYS[2] queue list  KEYS[3] the queues SET
-- ARGV[1] payload as it is in the in-flight list  ARGV[2] payload to push  ARGV[3] queue name
-- The job goes to the pop end of the queue, so it runs next. Returns 1 if moved, 0 if it was gone.
if redis.call('LREM', KEYS[1], -1, ARGV[1]) == 0 then return 0 end
redis.call('SADD', KEYS[3], ARGV[3])
redis.call('RPUSH', KEYS[2], ARGV[2])
return 1
