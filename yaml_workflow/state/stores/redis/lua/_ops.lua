-- Prelude: apply_ops(json) runs a list of operations, each an array of strings — a
-- Redis command and its arguments, or FRESH (a `running` step after a done one starts a
-- fresh record: FRESH, steps key, outputs key, step, 3 done statuses, record fields...).
-- Values inside are JSON text already: cjson only decodes strings here, never the numbers
-- it would round to 14 digits.
local function apply_ops(encoded)
  for _, op in ipairs(cjson.decode(encoded)) do
    if op[1] == 'FRESH' then
      local status = redis.call('HGET', op[2], op[4] .. '.status')
      if status == op[5] or status == op[6] or status == op[7] then
        local fields = {}
        for i = 8, #op do fields[#fields + 1] = op[4] .. '.' .. op[i] end
        redis.call('HDEL', op[2], unpack(fields))
        redis.call('HDEL', op[3], op[4])
      end
    else
      redis.call(unpack(op))
    end
  end
end
