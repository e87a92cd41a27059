#!/usr/bin/env bash
# Runs berth with its defaults: SQLite in ./.berth, the local Docker engine, API on
# 127.0.0.1:7070. Extra arguments go to `berth serve` (e.g. --port 7071).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/berth serve "$@"
