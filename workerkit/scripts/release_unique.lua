-- Release a unique job's lock if this job still holds it (a lock that expired and was taken by a newer push
-- of the same job is left alone).
-- KEYS[1] the lock STRING  ARGV[1] the jid
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
