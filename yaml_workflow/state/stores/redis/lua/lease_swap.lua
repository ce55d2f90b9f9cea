-- Take a lease that expired (or whose owner died): only if nobody changed it meanwhile.
-- KEYS: lease | ARGV: the value we read, the new value, ttl ms
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
