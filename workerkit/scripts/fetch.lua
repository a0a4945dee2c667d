-- Reliable fetch with acknowledgement, in one round trip.
-- KEYS[1] stat:processed  KEYS[2] stat:processed:<day>  KEYS[3] the inflight_lists registry HASH
-- KEYS[3+i] queue:<q_i>   KEYS[3+n+i] inflight:<identity>:<q_i>   (i = 1..n)
-- ARGV[1] n  ARGV[2] how many jobs to fetch  ARGV[3] a = number of acks
-- ARGV[4 .. 3+n] the queue indexes i in the order to fetch from
-- ARGV[3+n+i] the registry entry (owner JSON) of in-flight list i
-- ARGV[4+2n+2k], ARGV[5+2n+2k] (k = 0..a-1): queue index and payload of a finished job
-- Finished jobs of batches (workerkit.batch), from ARGV[c] with c = 4+2n+2a: ARGV[c] z = their number (0:
-- none, and nothing else of this part); then ARGV[c+1] the key prefix, and for each k = 0..z-1 four values
-- from ARGV[c+2+4k]: queue index, payload, bid and jid. Each is acknowledged as above, and when its LREM
-- removed it, it succeeds in its batch (which may fire the batch's callbacks, in this same step).
-- Metrics (workerkit.metrics), from ARGV[b] with b = c+1 (no batch jobs) or c+2+4z: ARGV[b] m = number of minutes (0: none, and no
-- KEYS below); then ARGV[b+1] the minutes' TTL in seconds, ARGV[b+2] the oldest minute the class index keeps,
-- and for each minute j = 0..m-1 in turn: its epoch minute, c and c class names, f and f (field, increment)
-- pairs, l and l (queue, latency ms) pairs.
-- KEYS[4+2n] the metrics:classes ZSET  KEYS[5+2n] the metrics:totals HASH
-- KEYS[6+2n+3j] the metrics:m:<minute> HASH, KEYS[7+2n+3j] the metrics:latency:<minute> HASH and
-- KEYS[8+2n+3j] the metrics:h:<hour> HASH of minute j (the hour's sum, kept an hour longer)
-- Acknowledges finished jobs: each LREM that removed a job counts it as processed, so an acknowledgement
-- sent twice (a lost reply, then a retry) counts once. Then moves up to ARGV[2] of the oldest jobs from the
-- queues, in the given order, onto the matching in-flight lists, and registers every list it filled, so a
-- list with jobs in it is always listed for recovery. Metrics add to the minute's and the hour's counters
-- and the totals (HINCRBY), keep the longest latency per queue and minute, and index each class by its last minute.
-- Returns {i, {payloads...}, i', {...}} for each queue that gave jobs, oldest job first.
local n = tonumber(ARGV[1])
local want = tonumber(ARGV[2])
local acks = tonumber(ARGV[3])
local base = 4 + 2 * n
local removed = 0
for k = 0, acks - 1 do
  removed = removed + redis.call('LREM', KEYS[3 + n + tonumber(ARGV[base + 2 * k])], -1, ARGV[base + 1 + 2 * k])
end
local p = base + 2 * acks
local batched = tonumber(ARGV[p])
if batched > 0 then
  local prefix = ARGV[p + 1]
  for q = p + 2, p + 4 * batched - 2, 4 do
    if redis.call('LREM', KEYS[3 + n + tonumber(ARGV[q])], -1, ARGV[q + 1]) > 0 then
      removed = removed + 1
      batch_member_done(prefix, ARGV[q + 2], ARGV[q + 3])
    end
  end
  p = p + 2 + 4 * batched
else
  p = p + 1
end
count(KEYS[1], KEYS[2], removed)
local minutes = tonumber(ARGV[p])
if minutes > 0 then
  local index, totals, ttl, cutoff = KEYS[4 + 2 * n], KEYS[5 + 2 * n], ARGV[p + 1], ARGV[p + 2]
  p = p + 3
  for j = 0, minutes - 1 do
    local hash, latency, hour, minute = KEYS[6 + 2 * n + 3 * j], KEYS[7 + 2 * n + 3 * j], KEYS[8 + 2 * n + 3 * j],
      ARGV[p]
    local classes = tonumber(ARGV[p + 1])
    p = p + 2
    for q = p, p + classes - 1 do
      redis.call('ZADD', index, 'GT', minute, ARGV[q])
    end
    p = p + classes
    local fields = tonumber(ARGV[p])
    p = p + 1
    for q = p, p + 2 * fields - 1, 2 do
      redis.call('HINCRBY', hash, ARGV[q], ARGV[q + 1])
      redis.call('HINCRBY', hour, ARGV[q], ARGV[q + 1])
      redis.call('HINCRBY', totals, ARGV[q], ARGV[q + 1])
    end
    if fields > 0 then
      redis.call('EXPIRE', hash, ttl)
      redis.call('EXPIRE', hour, tonumber(ttl) + 3600)
    end
    p = p + 2 * fields
    local queues = tonumber(ARGV[p])
    p = p + 1
    for q = p, p + 2 * queues - 1, 2 do
      if tonumber(ARGV[q + 1]) > tonumber(redis.call('HGET', latency, ARGV[q]) or '-1') then
        redis.call('HSET', latency, ARGV[q], ARGV[q + 1])
      end
    end
    if queues > 0 then redis.call('EXPIRE', latency, ttl) end
    p = p + 2 * queues
  end
  redis.call('ZREMRANGEBYSCORE', index, '-inf', '(' .. cutoff)
end
local out = {}
for o = 4, 3 + n do
  if want <= 0 then break end
  local i = tonumber(ARGV[o])
  local jobs = redis.call('RPOP', KEYS[3 + i], want)
  if jobs then
    redis.call('LPUSH', KEYS[3 + n + i], unpack(jobs))
    redis.call('HSET', KEYS[3], KEYS[3 + n + i], ARGV[3 + n + i])
    want = want - #jobs
    out[#out + 1] = i
    out[#out + 1] = jobs
  end
end
return out
