-- A run's figures for list views, counted server-side: steps done, steps planned, and
-- the hosts its steps ran on.  KEYS: run hash, steps hash | ARGV: the completed and
-- skipped statuses as JSON text.
local flat = redis.call('HGETALL', KEYS[2])
local done, hosts, seen = 0, {}, {}
for i = 1, #flat, 2 do
  local field, value = flat[i], flat[i + 1]
  if string.sub(field, -7) == '.status' then
    if value == ARGV[1] or value == ARGV[2] then done = done + 1 end
  elseif string.sub(field, -5) == '.host' and not seen[value] then
    seen[value] = true
    hosts[#hosts + 1] = value
  end
end
local total = 0
local plan = redis.call('HGET', KEYS[1], 'plan')
if plan then
  local ok, decoded = pcall(cjson.decode, plan)
  if ok and type(decoded) == 'table' and type(decoded['order']) == 'table' then total = #decoded['order'] end
end
return {done, total, hosts}
