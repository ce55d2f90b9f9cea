-- Extend a claim this holder still has, and note when (status shows a step whose
-- holder stopped renewing as stalled).
-- KEYS: claim, fleet hash | ARGV: token, ttl ms, step, holder json
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('HSET', KEYS[2], 'claim:' .. ARGV[3], ARGV[4])
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
