-- A holder that could not renew its claim (Redis was away) takes it back, if nobody
-- else took the step meanwhile: the claim is free, the step is not done, and its
-- attempt is still the one this holder runs.
-- KEYS: claim, fleet hash | ARGV: token, ttl ms, step, holder json, attempt
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('HSET', KEYS[2], 'claim:' .. ARGV[3], ARGV[4])
  return 1
end
if held then return 0 end
if redis.call('HGET', KEYS[2], 'done:' .. ARGV[3]) then return 0 end
if (redis.call('HGET', KEYS[2], 'attempt:' .. ARGV[3]) or '1') ~= ARGV[5] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('HSET', KEYS[2], 'claim:' .. ARGV[3], ARGV[4])
return 1
