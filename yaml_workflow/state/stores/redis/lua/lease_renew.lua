-- Renew a lease we hold (or that expired away and nobody took).
-- KEYS: lease | ARGV: token, the new value, ttl ms
local held = redis.call('GET', KEYS[1])
if (not held) or cjson.decode(held)['token'] == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
