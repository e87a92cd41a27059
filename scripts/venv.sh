#!/usr/bin/env bash
# Makes berth's Python environment in .venv: the exact versions and hashes of requirements.lock
# (scripts/lock.sh makes it), then berth itself without resolving anything again, so a fresh
# machine gets the set CI tested. Needs no root; scripts/setup.sh runs it after installing
# what the machine lacks, and `scripts/test.sh --fast` runs it alone.
# Idempotent: it installs only when .venv is missing or older than pyproject.toml or the lock.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[venv] %s\n' "$*" >&2; }

if [ ! -x .venv/bin/python ]; then
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    log "python3 cannot make a virtual environment here (install python3-venv, or run scripts/setup.sh as root)"
    exit 1
  fi
  log "creating the Python environment in .venv"
  python3 -m venv .venv
fi
stamp=.venv/.berth-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements.lock -nt "$stamp" ]; then
  log "installing berth and its locked dependencies into .venv"
  .venv/bin/pip install -q --disable-pip-version-check --require-hashes -r requirements.lock
  .venv/bin/pip install -q --disable-pip-version-check --no-deps -e .
  touch "$stamp"
fi
