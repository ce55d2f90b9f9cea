-- Bind a key to a value unless it is bound already: the value found, or nil when bound now.
-- KEYS: the binding | ARGV: value, ttl ms
local found = redis.call('GET', KEYS[1])
if found then
  return found
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
