#!/usr/bin/env bash
# `npm test`: every test, unit and integration, against the real brokers and real Celery workers.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x node_modules/.bin/vitest ]] || npm ci --no-audit --no-fund
bash scripts/prereqs.sh
mkdir -p .tmp
rm -f .tmp/vitest-results.json
set +e
node_modules/.bin/vitest run --reporter=default --reporter=json --outputFile.json=.tmp/vitest-results.json "$@"
status=$?
set -e
# One plain closing line, whatever the reporter printed above it.
node -e '
  const r = require("./.tmp/vitest-results.json");
  const skipped = r.numPendingTests + r.numTodoTests;
  // A suite whose setup failed fails no test by itself (its tests show as skipped): count it.
  const failed = r.numFailedTests > 0 ? r.numFailedTests : r.success ? 0 : Math.max(1, r.numFailedTestSuites);
  console.log(`tests: ${r.numPassedTests} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ""));
' 2>/dev/null || echo "tests: no result file (vitest exit status $status)"
exit "$status"
