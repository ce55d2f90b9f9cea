-- Store a batch chunk's item records and count it, once.
-- KEYS: the fan-out hash | ARGV: chunk index, items {index: json}
-- Returns the number of chunks counted, or -1 when this chunk was counted before.
if redis.call('HSETNX', KEYS[1], 'chunkdone:' .. ARGV[1], '1') == 0 then return -1 end
for i, v in pairs(cjson.decode(ARGV[2])) do redis.call('HSET', KEYS[1], 'item:' .. i, v) end
return redis.call('HINCRBY', KEYS[1], 'chunks_done', 1)
