-- KEYS: queue meta
-- ARGV: P, retention, states (comma-separated, in page order), index of the
--       state to start in, offset within it, page size
-- -> {next state index, next offset (-1: no more), id, record, id, record, ...}
--- @include "includes/prelude.lua"
--- @include "includes/stream_states.lua"
local states = {}
for st in string.gmatch(ARGV[3], '[^,]+') do states[#states + 1] = st end
local si, offset, want = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local out = {0, -1}
while si <= #states and want > 0 do
  local state = states[si]
  local ids, passed = {}
  if INDEXED[state] then
    ids = redis.call('ZRANGE', P .. 's:' .. state, offset, offset + want - 1)
    passed = #ids
  else
    local entries
    entries, passed = stream_entries(state, offset, want)
    for i, e in ipairs(entries) do ids[i] = e[3] end
  end
  for _, id in ipairs(ids) do
    local rec = redis.call('HGETALL', tkey(id))
    local ok = #rec > 0
    if ok and not INDEXED[state] then
      -- A stream entry may be stale (its task moved on).
      ok = false
      for i = 1, #rec, 2 do
        if rec[i] == 'state' then ok = rec[i + 1] == state end
      end
    end
    if ok then
      out[#out + 1] = id
      out[#out + 1] = rec
    end
  end
  want = want - passed
  offset = offset + passed
  if want > 0 then
    si = si + 1
    offset = 0
  end
end
if si <= #states then
  out[1] = si
  out[2] = offset
end
return out
