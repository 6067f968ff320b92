#!/bin/sh
# Runs clients/js tests (the files given, relative to clients/js) with Node's own test runner.
# Exit 77 (CTest SKIP_RETURN_CODE) only when node is absent: CI installs nodejs, so a skip
# there is visible, never counted as a pass. FLOWRELAY_BUILD_DIR names the build tree.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v node >/dev/null 2>&1; then
  echo "node not found in PATH: the JS client tests are skipped (apt-get install nodejs)"
  exit 77
fi
cd "$here/../../clients/js"
# Node 22+ has a global WebSocket; Node 20/21 need the flag (older: the tests fail loudly).
flags=
if ! node -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)' 2>/dev/null; then
  flags=--experimental-websocket
fi
exec node $flags --test --test-reporter=spec "$@"
