-- Take a token from a token-bucket limiter (ARGV[1] tokens, refilled at ARGV[1] per ARGV[2] ms), if one is left.
-- KEYS[1] the limiter's HASH {tokens, at}
-- ARGV[1] count (the bucket's size)  ARGV[2] the refill period (ms)  ARGV[3] unused  ARGV[4] now (ms; "" for
-- the server's clock)
-- Returns {1, now} when a token was taken, {0, ms until the next token} when the bucket is empty.
local now = tonumber(ARGV[4])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
local size, period = tonumber(ARGV[1]), tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]) or size, tonumber(state[2]) or now
tokens = math.min(size, tokens + math.max(0, now - at) * size / period)
local taken = 0
if tokens >= 1 then
  tokens = tokens - 1
  taken = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(period) * 2)
if taken == 1 then return {1, tostring(now)} end
return {0, tostring((1 - tokens) * period / size)}
