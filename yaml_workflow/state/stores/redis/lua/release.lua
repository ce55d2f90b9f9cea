-- Give a claim back, only if this holder still has it (compare and delete).
-- KEYS: claim, fleet hash | ARGV: token, step
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('HDEL', KEYS[2], 'claim:' .. ARGV[2])
  return redis.call('DEL', KEYS[1])
end
return 0
