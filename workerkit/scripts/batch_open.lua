-- Open a block of jobs of a batch (workerkit.batch): create the batch, or reopen it to add jobs.
-- KEYS[1] the batch HASH  KEYS[2] the batches index ZSET (bid -> creation time)
-- ARGV[1] the key prefix  ARGV[2] bid  ARGV[3] "create" or "reopen"  ARGV[4] the keys' TTL in seconds
-- ARGV[5] the time now  create: ARGV[6] the parent's bid ("" for none)  ARGV[7..] field, value pairs
-- Creating makes the hash with one open block; a child joins its parent's pending members (b:<bid>), only
-- while the parent has not succeeded. Reopening counts one more open block, unless the batch succeeded.
-- Either way the batch's keys live TTL seconds more, and the index scores it by now (its last opening).
-- Returns 1 when open; 0 when the batch (or, creating, the parent) is unknown or expired; -1 when it (or
-- the parent) succeeded already; -2 when creating a batch that exists.
local prefix, bid, ttl, now = ARGV[1], ARGV[2], ARGV[4], ARGV[5]
local b = KEYS[1]
local function index()
  redis.call('ZADD', KEYS[2], now, bid)
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (tonumber(now) - tonumber(ttl)))
end
if ARGV[3] == 'reopen' then
  if redis.call('EXISTS', b) == 0 then return 0 end
  if redis.call('HEXISTS', b, 'succeeded_at') == 1 then return -1 end
  redis.call('HINCRBY', b, 'open', 1)
  for _, key in ipairs({b, b .. ':pending', b .. ':failed', b .. ':dead'}) do redis.call('EXPIRE', key, ttl) end
  index()
  return 1
end
if redis.call('EXISTS', b) == 1 then return -2 end
local parent = ARGV[6]
if parent ~= '' then
  local p = prefix .. 'batch:' .. parent
  if redis.call('EXISTS', p) == 0 then return 0 end
  if redis.call('HEXISTS', p, 'succeeded_at') == 1 then return -1 end
  redis.call('SADD', p .. ':pending', 'b:' .. bid)
  redis.call('HINCRBY', p, 'total', 1)
  redis.call('HINCRBY', p, 'children', 1)
  redis.call('EXPIRE', p .. ':pending', ttl)
  redis.call('HSET', b, 'parent', parent)
end
redis.call('HSET', b, 'open', 1, 'total', 0, 'created_at', now, unpack(ARGV, 7))
redis.call('EXPIRE', b, ttl)
index()
return 1
