#!/usr/bin/env bash
# Re-resolve requirements.lock, the exact set (with hashes) scripts/test.sh and CI install.
#   bash scripts/lock.sh                          after editing dependencies in pyproject.toml: keeps every
#                                                 other pin, adds or moves only what the edit needs
#   bash scripts/lock.sh --upgrade-package boto3  move one package (and what it needs) to its newest release
#   bash scripts/lock.sh --upgrade                everything to the newest releases pyproject.toml allows
# Then run `bash scripts/test.sh` and commit pyproject.toml and requirements.lock together.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/uv ] || { echo "no .venv/bin/uv: run bash scripts/test.sh (or pip install -e '.[test]') first" >&2; exit 1; }
# One lock for every supported Python and platform (--universal), with the hashes of every file
# of each pinned release, so pip installs it with --require-hashes anywhere.
exec .venv/bin/uv pip compile pyproject.toml --extra test --universal --python-version 3.11 --generate-hashes \
  --quiet -o requirements.lock "$@"
