-- For the scripts that list or count PENDING and RUNNING tasks (needs
-- prelude.lua).
local STREAMS = {P .. 'stream:high', P .. 'stream', P .. 'stream:low'}


-- The stream entries of `state` tasks in priority order: PENDING, those not
-- yet delivered; RUNNING, those delivered and not yet acknowledged. Skips
-- `offset` entries, then returns up to `n` {stream, entry id, task id} and
-- how many entries it passed (fewer than `n` when there are no more).
local function stream_entries(state, offset, n)
  local out, passed = {}, 0
  for _, stream in ipairs(STREAMS) do
    if passed >= n then break end
    local got = {}
    if state == 'PENDING' then
      local last = last_delivered(stream)
      if last then
        for _, e in ipairs(redis.call('XRANGE', stream, '(' .. last, '+', 'COUNT',
                                      offset + n - passed)) do
          got[#got + 1] = {e[1], e[2][2]}
        end
      end
    else
      local ok, pel = pcall(redis.call, 'XPENDING', stream, G, '-', '+', offset + n - passed)
      if ok then
        for _, p in ipairs(pel) do
          local e = redis.call('XRANGE', stream, p[1], p[1])[1]
          if e then got[#got + 1] = {e[1], e[2][2]} end
        end
      end
    end
    if #got <= offset then
      offset = offset - #got
    else
      for i = offset + 1, #got do
        if passed >= n then break end
        out[#out + 1] = {stream, got[i][1], got[i][2]}
        passed = passed + 1
      end
      offset = 0
    end
  end
  return out, passed
end
