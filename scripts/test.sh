#!/usr/bin/env bash
# `npm test`: every test, unit and integration, against the real brokers and real Celery workers.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x node_modules/.bin/vitest ]] || npm ci --no-audit --no-fund
bash scripts/prereqs.sh
exec node_modules/.bin/vitest run "$@"
