#!/usr/bin/env bash
# Re-resolves berth's dependencies into requirements.lock: exact versions with their hashes,
# for Python 3.11 on x86_64 Linux. scripts/setup.sh installs from that file alone, so a fresh
# machine gets what CI tested. Run after changing the dependencies in pyproject.toml (or to
# take newer releases on purpose), then run the test suite and commit both files.
set -euo pipefail
cd "$(dirname "$0")/.."
tool=$(mktemp -d)
trap 'rm -rf "$tool"' EXIT
python3 -m venv "$tool"
"$tool/bin/pip" install -q --disable-pip-version-check uv
"$tool/bin/uv" pip compile pyproject.toml --extra dev --generate-hashes \
  --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
  --custom-compile-command scripts/lock.sh -o requirements.lock "$@"
