-- luacheck settings for the queue protocol's scripts (Redis's Lua 5.1).
std = "lua51"
-- What Redis gives a script.
read_globals = {"redis", "KEYS", "ARGV", "cjson", "cmsgpack", "bit", "struct"}
max_line_length = 100
