-- Take a slot of a concurrency limiter, if one is free.
-- KEYS[1] the limiter's ZSET token -> time its hold lapses (ms)
-- ARGV[1] size  ARGV[2] how long a hold lasts (ms)  ARGV[3] this holder's token  ARGV[4] now (ms; "" for
-- the server's clock)
-- Holds that lapsed (their holder died, or held too long) are dropped first. Returns {1, now} when taken,
-- {0, ms until the earliest hold lapses} when every slot is held.
local now = tonumber(ARGV[4])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])) * 2)
  return {1, tostring(now)}
end
local earliest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tostring(tonumber(earliest[2]) - now)}
