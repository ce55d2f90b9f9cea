-- Record transitions of a run, all or nothing (a script is atomic).
-- KEYS[1]: the run hash.  ARGV[1]: the operations (see _ops.lua).  ARGV[2]: '1' when the
-- run must already exist: then a run that does not (expired, flushed) is left untouched
-- and 0 is returned, so no stray keys are created.
if ARGV[2] == '1' and redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
apply_ops(ARGV[1])
return 1
