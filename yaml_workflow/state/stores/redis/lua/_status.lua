-- Prelude: the run's status as a step sees it (KEYS[1] fleet hash, KEYS[2] run hash):
-- the store's `cancelled` wins over the fleet's own status; 'gone' when Redis has neither
-- (flushed, restarted empty): steps then do nothing and `submit --resume` rebuilds the run.
local st = redis.call('HGET', KEYS[2], 'status')
if st ~= 'cancelled' then st = redis.call('HGET', KEYS[1], 'status') or st or 'gone' end
