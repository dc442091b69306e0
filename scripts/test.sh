#!/usr/bin/env bash
# Install the project with its test extras into .venv and run the whole test suite.
# Browser tests need Debian's chromium; it is installed here when missing (root, as in CI).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "warning: could not install chromium; browser tests will fail" >&2
fi
python3 -m venv .venv
# The Debian/pyenv pip (23.x) cannot resolve pyiceberg's extras against aiobotocore's botocore pin.
.venv/bin/pip install -q --disable-pip-version-check -U pip
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
exec .venv/bin/python -m pytest -q "$@"
