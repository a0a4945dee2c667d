-- Push every job of an in-flight list back to the pop end of its queue (a worker's shutdown).
-- KEYS[1] the in-flight list  KEYS[2] the queue LIST  KEYS[3] the queues SET  KEYS[4] the inflight_lists HASH
-- ARGV[1] the queue name
-- The list is forgotten in the registry once empty. Returns how many jobs moved.
local moved = 0
while redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT') do
  moved = moved + 1
end
if moved > 0 then redis.call('SADD', KEYS[3], ARGV[1]) end
redis.call('HDEL', KEYS[4], KEYS[1])
return moved
