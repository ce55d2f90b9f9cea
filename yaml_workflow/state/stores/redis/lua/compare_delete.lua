-- Delete a key only if it still holds the value we read.  KEYS: the key | ARGV: that value
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
