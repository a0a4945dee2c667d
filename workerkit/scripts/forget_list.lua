-- Forget an in-flight list in the registry, only if it is empty and its process is gone: a process that
-- beats again (or fills the list) after its heartbeat lapsed keeps its entry.
-- KEYS[1] the inflight_lists HASH  KEYS[2] the in-flight list  KEYS[3] the owner's heartbeat HASH
if redis.call('EXISTS', KEYS[3]) == 1 or redis.call('LLEN', KEYS[2]) > 0 then return 0 end
return redis.call('HDEL', KEYS[1], KEYS[2])
