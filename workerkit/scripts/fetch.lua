-- Reliable fetch with acknowledgement, in one round trip.
-- KEYS[1] stat:processed  KEYS[2] stat:processed:<day>
-- KEYS[2+i] queue:<q_i>   KEYS[2+n+i] inflight:<identity>:<q_i>   (i = 1..n)
-- ARGV[1] n  ARGV[2] how many jobs to fetch  ARGV[3] a = number of acks
-- ARGV[4 .. 3+n] the queue indexes i in the order to fetch from
-- ARGV[4+n+2k], ARGV[5+n+2k] (k = 0..a-1): queue index and payload of a finished job
-- Acknowledges finished jobs (LREM from their in-flight list, counted as processed), then moves up to
-- ARGV[2] of the oldest jobs from the queues, in the given order, onto the matching in-flight lists.
-- Returns {i, {payloads...}, i', {...}} for each queue that gave jobs, oldest job first.
local n = tonumber(ARGV[1])
local want = tonumber(ARGV[2])
local acks = tonumber(ARGV[3])
local base = 4 + n
for k = 0, acks - 1 do
  redis.call('LREM', KEYS[2 + n + tonumber(ARGV[base + 2 * k])], -1, ARGV[base + 1 + 2 * k])
end
if acks > 0 then
  redis.call('INCRBY', KEYS[1], acks)
  redis.call('INCRBY', KEYS[2], acks)
  redis.call('EXPIRE', KEYS[2], 157680000)
end
local out = {}
for o = 4, 3 + n do
  if want <= 0 then break end
  local i = tonumber(ARGV[o])
  local jobs = redis.call('RPOP', KEYS[2 + i], want)
  if jobs then
    redis.call('LPUSH', KEYS[2 + n + i], unpack(jobs))
    want = want - #jobs
    out[#out + 1] = i
    out[#out + 1] = jobs
  end
end
return out
