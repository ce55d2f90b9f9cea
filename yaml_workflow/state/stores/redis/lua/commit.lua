-- A step's end: its records, its done marker and the join counters of its successors,
-- exactly once.  KEYS: fleet, run hash, ns, events, claim | ARGV: step, ns entry,
-- successors [[s, need]], event ('' for none), forced skips {s: reason}, '1' to count
-- the step out of `remaining` (a failure that stops the run is not: the run must not look
-- finished to others), claim token, the step's held records as operations (_ops.lua).
-- Only the first commit of a step records anything; a second delivery gets the
-- successors the first one made ready (to replay the dispatch).  The claim goes back here.
local step = ARGV[1]
if ARGV[7] ~= '' and redis.call('GET', KEYS[5]) == ARGV[7] then
  redis.call('DEL', KEYS[5])
  redis.call('HDEL', KEYS[1], 'claim:' .. step)
end
if st == 'gone' then return {0, '[]', 0, st} end
if redis.call('HSETNX', KEYS[1], 'done:' .. step, '1') == 0 then
  return {0, redis.call('HGET', KEYS[1], 'next:' .. step) or '[]',
          tonumber(redis.call('HGET', KEYS[1], 'remaining') or '0'), st}
end
apply_ops(ARGV[8])
redis.call('HSET', KEYS[3], step, ARGV[2])
for name, reason in pairs(cjson.decode(ARGV[5])) do
  redis.call('HSETNX', KEYS[1], 'skip:' .. name, reason)
end
local ready = {}
for _, pair in ipairs(cjson.decode(ARGV[3])) do
  if redis.call('HINCRBY', KEYS[1], 'join:' .. pair[1], 1) == tonumber(pair[2]) then
    local reason = redis.call('HGET', KEYS[1], 'skip:' .. pair[1]) or ''
    table.insert(ready, cjson.encode({pair[1], reason}))
  end
end
local nxt = '[' .. table.concat(ready, ',') .. ']'
redis.call('HSET', KEYS[1], 'next:' .. step, nxt)
local remaining = tonumber(redis.call('HGET', KEYS[1], 'remaining') or '0')
if ARGV[6] == '1' then remaining = redis.call('HINCRBY', KEYS[1], 'remaining', -1) end
if ARGV[4] ~= '' then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', '100000', '*', 'e', ARGV[4])
end
return {1, nxt, remaining, st}
