#!/usr/bin/env bash
# Runs berth's whole test suite: lint, format check, types, layer contracts, then the unit and
# integration tests against the real Docker engine and real berth servers on loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff" && ruff check . && ruff format --check .
echo "== mypy" && mypy
echo "== import contracts" && lint-imports
echo "== pytest" && pytest "$@"
