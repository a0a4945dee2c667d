-- Move one job out of an in-flight list back to its queue, only if it is still there (a worker gives back
-- a job it did not start, or the sweep recovers a dead process's job).
-- KEYS[1] the in-flight list  KEYS[2] the queue LIST  KEYS[3] the queues SET
-- ARGV[1] the payload as it is in the in-flight list  ARGV[2] the payload to push  ARGV[3] the queue name
-- The job goes to the pop end of the queue, so it runs next. Returns 1 if moved, 0 if it was gone.
if redis.call('LREM', KEYS[1], -1, ARGV[1]) == 0 then return 0 end
enqueue(KEYS[3], KEYS[2], ARGV[3], ARGV[2], true)
return 1
