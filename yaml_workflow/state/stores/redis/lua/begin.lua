-- The start of a step's delivery, in one round trip: status, done marker, claim, attempt
-- and the records of the steps its templates read.
-- KEYS: fleet, run hash, claim, ns | ARGV: step, token, claim ttl ms, holder json,
-- the claim ttl in whole seconds, ns fields...  (ns fields: '*' for all of them).
-- The claim key lives ttl ms; its holder renews it.
local step = ARGV[1]
if st ~= 'running' then return {st} end
local done = redis.call('HGET', KEYS[1], 'done:' .. step) or ''
if done == '' and redis.call('EXISTS', KEYS[3]) == 0
    and redis.call('HEXISTS', KEYS[1], 'claim:' .. step) == 1 then
  -- The step's claim expired instead of being given back (its holder field is still
  -- here): the holder may have lost it to a Redis outage only.  Until Redis has been up
  -- for one claim ttl, holders re-take their claims and nothing else may take one.
  local info = redis.call('INFO', 'server')
  local up = tonumber(string.match(info, 'uptime_in_seconds:(%d+)')) or 0
  if up < tonumber(ARGV[5]) then return {st, done, 0, (tonumber(ARGV[5]) - up) * 1000} end
end
local got = redis.call('SET', KEYS[3], ARGV[2], 'NX', 'PX', ARGV[3])
if not got then return {st, done, 0, redis.call('PTTL', KEYS[3])} end
redis.call('HSET', KEYS[1], 'claim:' .. step, ARGV[4])
local f = redis.call('HMGET', KEYS[1], 'attempt:' .. step, 'not_before:' .. step,
                     'started:' .. step, 'fanout:' .. step, 'gen')
local attempt = f[1] or '1'
-- The message arrived: a replay of its sender's dispatch need not send it again.
redis.call('HSET', KEYS[1], 'sent:' .. step, '1')
if done == '' then redis.call('HSET', KEYS[1], 'started:' .. step, attempt) end
local ns = {}
if ARGV[6] == '*' then ns = redis.call('HGETALL', KEYS[4])
elseif #ARGV > 5 then ns = redis.call('HMGET', KEYS[4], unpack(ARGV, 6)) end
return {st, done, 1, attempt, f[2] or '', f[3] or '', f[4] or '', ns, f[5] or ''}
