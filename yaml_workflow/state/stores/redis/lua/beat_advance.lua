-- Move a schedule's cursor (the last tick decided) forward, only while we hold the beat
-- lock and the schedule still exists: a beat that lost the lock cannot move it, nor back.
-- KEYS: the beat lock, the schedule's state | ARGV: our lock value, tick text, tick epoch
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  return 0
end
local at = tonumber(redis.call('HGET', KEYS[2], 'cursor_at') or '-1e18')
if tonumber(ARGV[3]) > at then
  redis.call('HSET', KEYS[2], 'cursor', ARGV[2], 'cursor_at', ARGV[3])
end
return 1
