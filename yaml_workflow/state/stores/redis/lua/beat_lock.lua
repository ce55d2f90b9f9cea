-- Take the beat lock if it is free, or renew it if we hold it: 1 when we hold it now.
-- KEYS: the lock | ARGV: our value (token, host, pid), ttl ms
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not held then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
