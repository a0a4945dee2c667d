-- Push jobs that belong to a batch (workerkit.batch), each registered as pending in the same step, so a job
-- can never finish before its batch knows it. Pushed only inside an open block, so the batch cannot
-- complete meanwhile.
-- KEYS[1] the batch HASH  KEYS[2] its pending SET  KEYS[3] the queue LIST, or the schedule ZSET
-- KEYS[4] the queues SET
-- ARGV[1] "queue" or "schedule"  ARGV[2] the queue name  ARGV[3] the due time (schedule)  ARGV[4] the TTL
-- ARGV[5..] jid, payload pairs, in push order
-- Returns how many were pushed; 0 and nothing written when the batch is unknown, expired or succeeded.
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'succeeded_at') == 1 then return 0 end
local n = 0
for i = 5, #ARGV, 2 do
  redis.call('SADD', KEYS[2], ARGV[i])
  if ARGV[1] == 'schedule' then
    redis.call('ZADD', KEYS[3], ARGV[3], ARGV[i + 1])
  else
    enqueue(KEYS[4], KEYS[3], ARGV[2], ARGV[i + 1], false)
  end
  n = n + 1
end
redis.call('HINCRBY', KEYS[1], 'total', n)
redis.call('EXPIRE', KEYS[2], ARGV[4])
return n
