#!/usr/bin/env bash
# luacheck (Debian's lua-check) over every script of broker/lua/, includes
# expanded as Redis runs them; findings name the file and line they are in.
set -euo pipefail
lua_dir=broker/lua
if ! command -v luacheck >/dev/null; then
  echo "luacheck is missing: scripts/install_deps.sh installs lua-check" >&2
  exit 1
fi
exec python3 "$lua_dir/embed.py" --lint "$lua_dir/.luacheckrc" "$lua_dir"/*.lua
