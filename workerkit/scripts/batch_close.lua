-- Close a block of jobs of a batch (workerkit.batch), then fire what the batch has reached (it may be
-- complete already when its jobs ran while the block was open).
-- KEYS[1] the batch HASH  ARGV[1] the key prefix  ARGV[2] bid
-- ARGV[3] the error the creating block raised ("" when it ended normally): a batch whose creating block
-- raised may complete, but never succeeds (its jobs are only those pushed before the error).
-- Returns 1, or 0 when the batch is unknown or expired.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[3]) end
redis.call('HINCRBY', KEYS[1], 'open', -1)
batch_check(ARGV[1], ARGV[2])
return 1
