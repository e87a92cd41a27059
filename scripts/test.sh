#!/usr/bin/env bash
# Runs berth's tests.
#
#   scripts/test.sh          the whole suite, what CI runs: lint, format check, types, layer
#                            contracts, then every test, the integration tests against the real
#                            Docker engine and real berth servers on loopback ports (it prepares
#                            the machine first: scripts/setup.sh --test, which needs root).
#   scripts/test.sh --fast   the inner loop, under a minute, without root or an engine: the same
#                            checks, then the fast tier (tests/unit, tests/domain, tests/fast and
#                            the runtime contract on the in-memory driver; nothing marked
#                            `engine`). It only makes .venv if it is missing.
#
# The whole suite then runs the store, domain and fast suites, and every integration suite
# that reaches a store (real berth servers, each on a database of its own: the API, gateways,
# faults, dashboard, MCP, CLI, Kubernetes), a second time on a PostgreSQL server started for
# the run (setup.sh --test installs PostgreSQL; BERTH_TEST_DATABASE=postgresql, see
# tests/support/postgres.py). Run that pass, or one suite of it, alone with
#   BERTH_TEST_DATABASE=postgresql .venv/bin/pytest tests/domain tests/fast tests/integration/...
# (the Docker driver's suites need no store; the replica suites run on PostgreSQL in the
# first pass already).
#
# Further arguments go to pytest (e.g. -x, -k name, a test file of the tier).
set -euo pipefail
cd "$(dirname "$0")/.."
fast=false
if [ "${1:-}" = "--fast" ]; then
  fast=true
  shift
  bash scripts/venv.sh
else
  bash scripts/setup.sh --test
fi
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff" && ruff check . && ruff format --check .
echo "== mypy" && mypy
echo "== import contracts" && lint-imports
if $fast; then
  echo "== pytest (fast tier)"
  pytest -m "not engine" tests/unit tests/domain tests/contract tests/fast "$@"
else
  echo "== pytest" && pytest "$@"
  # setup.sh --test installed PostgreSQL: every suite that reaches a store runs on it too.
  echo "== pytest (store, domain, fast and integration suites on PostgreSQL)"
  pg_suites=()
  for suite in tests/integration/test_*.py; do
    case "$suite" in
      */test_docker_*) ;;   # the Docker driver alone: no store
      */test_replica*) ;;   # the replica suites ran on PostgreSQL above
      *) pg_suites+=("$suite") ;;
    esac
  done
  BERTH_TEST_DATABASE=postgresql pytest tests/domain tests/fast "${pg_suites[@]}"
fi
