-- Admit one event into a sliding-window limiter (at most ARGV[1] events in any ARGV[2] ms), if there is room.
-- KEYS[1] the limiter's ZSET member -> time admitted (ms)
-- ARGV[1] count  ARGV[2] the window (ms)  ARGV[3] a member unique to this event  ARGV[4] now (ms; "" for the
-- server's clock)
-- Returns {1, now} when admitted, {0, ms until the oldest event leaves the window} when it is full.
local now = tonumber(ARGV[4])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window))
  return {1, tostring(now)}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tostring(tonumber(oldest[2]) + window - now)}
