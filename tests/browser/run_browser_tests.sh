#!/bin/sh
# Runs the browser tests (the files given, relative to tests/browser) with Node's test runner.
# Exit 77 (CTest SKIP_RETURN_CODE) only when Debian's chromium or tests/browser/node_modules
# (npm ci) is missing: CI installs both, so a skip there is visible, never counted as a pass.
# FLOWRELAY_BUILD_DIR names the build tree (flowrelayd, plugins, artifacts/).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
chromium=${FLOWRELAY_CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
  echo "SKIP: $chromium not found (apt-get install chromium)"
  exit 77
fi
if [ ! -f "$here/node_modules/playwright-core/package.json" ]; then
  echo "SKIP: $here/node_modules/playwright-core is missing (cd tests/browser && npm ci)"
  exit 77
fi
if ! command -v node >/dev/null 2>&1; then
  echo "SKIP: node not found in PATH (apt-get install nodejs)"
  exit 77
fi
cd "$here"
exec node --test --test-reporter=spec "$@"
