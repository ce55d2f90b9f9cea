-- The start of a step's delivery, in one round trip: status, done marker, claim, attempt
-- and the records of the steps its templates read.
-- KEYS: fleet, run hash, claim, ns | ARGV: step, token, claim ttl ms, holder json, ns fields...
-- (ns fields: '*' for all of them).  The claim key lives ttl ms; its holder renews it.
local step = ARGV[1]
if st ~= 'running' then return {st} end
local done = redis.call('HGET', KEYS[1], 'done:' .. step) or ''
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
if ARGV[5] == '*' then ns = redis.call('HGETALL', KEYS[4])
elseif #ARGV > 4 then ns = redis.call('HMGET', KEYS[4], unpack(ARGV, 5)) end
return {st, done, 1, attempt, f[2] or '', f[3] or '', f[4] or '', ns, f[5] or ''}
