-- Give a lease back, only if we still hold it.  KEYS: lease | ARGV: token
local held = redis.call('GET', KEYS[1])
if held and cjson.decode(held)['token'] == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
