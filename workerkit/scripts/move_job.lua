-- Move one job out of an in-flight list, atomically, only if it is still there.
-- KEYS[1] in-flight list  KEYS[2] destination (a queue LIST or the dead ZSET)  KEYS[3] the queues SET
-- ARGV[1] payload as it is in the list  ARGV[2] payload to write  ARGV[3] "queue" or "dead"
-- ARGV[4] dead score (epoch seconds)  ARGV[5] queue name (for "queue")
-- A job pushed back to a queue goes to its pop end, so it runs next. Returns 1 if moved, 0 if gone.
if redis.call('LREM', KEYS[1], -1, ARGV[1]) == 0 then return 0 end
if ARGV[3] == 'queue' then
  redis.call('SADD', KEYS[3], ARGV[5])
  redis.call('RPUSH', KEYS[2], ARGV[2])
else
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[2])
end
return 1
