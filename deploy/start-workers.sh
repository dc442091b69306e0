#!/usr/bin/env bash
# Start N Celery workers on this host for the distributed profile (docs/distributed.md):
#
#   deploy/start-workers.sh N
#
# Each worker takes one run at a time from the queue and executes it in process; start the same
# command on every worker host. The process is the Celery main process itself (exec), so SIGTERM
# stops it cleanly: running runs finish first (Celery's warm shutdown), a second SIGTERM or
# SIGQUIT stops at once. Needs DAGSTER_HOME (holding deploy/dagster.celery.yaml as dagster.yaml)
# and the PACKETX_ variables of docs/distributed.md; runs on the project's venv (pip install '.[celery]').
set -euo pipefail
workers="${1:?usage: deploy/start-workers.sh NUMBER_OF_WORKERS}"
: "${DAGSTER_HOME:?set DAGSTER_HOME to the directory holding deploy/dagster.celery.yaml as dagster.yaml}"
: "${PACKETX_CELERY_BROKER:?set PACKETX_CELERY_BROKER, e.g. pyamqp://guest@127.0.0.1:5672//}"
: "${PACKETX_CELERY_BACKEND:?set PACKETX_CELERY_BACKEND, e.g. redis://127.0.0.1:6379/0}"
project="$(cd "$(dirname "$0")/.." && pwd)"
bin="$project/.venv/bin"
[ -x "$bin/celery" ] || bin="$(dirname "$(command -v celery)")"
cd "$project"
# Targets with a single writer keep one slot whatever the pools' default (idempotent).
"$bin/dagster" instance concurrency set duckdb_serving 1 >/dev/null
"$bin/dagster" instance concurrency set warehouse_loads 1 >/dev/null
# What `dagster-celery worker start` runs, minus its wrapper process (which SIGTERM would not stop).
# List the workers: celery -A dagster_celery.app -b "$PACKETX_CELERY_BROKER" status
exec "$bin/celery" -A dagster_celery.app -b "$PACKETX_CELERY_BROKER" --result-backend "$PACKETX_CELERY_BACKEND" \
  worker -Q "${PACKETX_CELERY_QUEUE:-dagster}" -n "${PACKETX_CELERY_WORKER_NAME:-packetx}@%h" \
  --concurrency "$workers" --prefetch-multiplier 1 --without-gossip --without-mingle --loglevel INFO
