#!/usr/bin/env bash
# Installs the dashboard's front-end libraries (xterm.js and its fit add-on) from the npm
# registry at the versions of package-lock.json (`npm ci`), then copies the files the pages
# load into src/berth/dashboard/static/vendor/, which the server serves under /static/vendor/.
# Nothing of them is kept in the repository. Idempotent: skips when the copies are newer
# than the lock file.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[dashboard] %s\n' "$*" >&2; }
vendor=src/berth/dashboard/static/vendor
stamp=$vendor/.installed
if [ -f "$stamp" ] && [ "$stamp" -nt package-lock.json ]; then
  exit 0
fi
log "installing the dashboard's front-end libraries (npm ci)"
npm ci --no-audit --no-fund --loglevel=error >/dev/null
mkdir -p "$vendor"
cp node_modules/@xterm/xterm/lib/xterm.js node_modules/@xterm/xterm/css/xterm.css "$vendor/"
cp node_modules/@xterm/addon-fit/lib/addon-fit.js "$vendor/"
touch "$stamp"
