-- Reliable fetch with acknowledgement, in one round trip.
-- KEYS[1] stat:processed  KEYS[2] stat:processed:<day>  KEYS[3] the inflight_lists registry HASH
-- KEYS[3+i] queue:<q_i>   KEYS[3+n+i] inflight:<identity>:<q_i>   (i = 1..n)
-- ARGV[1] n  ARGV[2] how many jobs to fetch  ARGV[3] a = number of acks
-- ARGV[4 .. 3+n] the queue indexes i in the order to fetch from
-- ARGV[3+n+i] the registry entry (owner JSON) of in-flight list i
-- ARGV[4+2n+2k], ARGV[5+2n+2k] (k = 0..a-1): queue index and payload of a finished job
-- Acknowledges finished jobs: each LREM that removed a job counts it as processed, so an acknowledgement
-- sent twice (a lost reply, then a retry) counts once. Then moves up to ARGV[2] of the oldest jobs from the
-- queues, in the given order, onto the matching in-flight lists, and registers every list it filled, so a
-- list with jobs in it is always listed for recovery.
-- Returns {i, {payloads...}, i', {...}} for each queue that gave jobs, oldest job first.
local n = tonumber(ARGV[1])
local want = tonumber(ARGV[2])
local acks = tonumber(ARGV[3])
local base = 4 + 2 * n
local removed = 0
for k = 0, acks - 1 do
  removed = removed + redis.call('LREM', KEYS[3 + n + tonumber(ARGV[base + 2 * k])], -1, ARGV[base + 1 + 2 * k])
end
count(KEYS[1], KEYS[2], removed)
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
