#!/usr/bin/env bash
# Install the project into .venv from requirements.lock (exact versions, hashes checked; nothing is
# resolved again), then run the test suite on every core with pytest-xdist.
#   bash scripts/test.sh                every tier, as CI runs it (the heavy tests are scheduled first)
#   bash scripts/test.sh -m unit        one tier: unit | pipeline | services | e2e | browser (packetx_lakehouse_tests/conftest.py)
#   bash scripts/test.sh -m "not browser" -x packetx_lakehouse_tests/lib    any pytest arguments
#   bash scripts/test.sh -n 0 FILE      serial, e.g. to debug one test
# Browser tests need Debian's chromium; it is installed here when missing (root, as in CI).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "warning: could not install chromium; browser tests will fail" >&2
fi
python3 -m venv .venv
pip=(.venv/bin/python -m pip -q --disable-pip-version-check)
# --no-deps: the lock is the whole environment (setuptools included, hence --no-build-isolation).
"${pip[@]}" install --require-hashes --no-deps -r requirements.lock
"${pip[@]}" install --no-deps --no-build-isolation -e .
"${pip[@]}" check >/dev/null || { "${pip[@]}" check; echo "requirements.lock does not satisfy pyproject.toml: run bash scripts/lock.sh" >&2; exit 1; }
exec .venv/bin/python -m pytest -q -n auto --dist loadgroup "$@"
