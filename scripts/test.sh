#!/usr/bin/env bash
# `npm test`: every test, unit and integration, against the real brokers and real Celery workers.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x node_modules/.bin/vitest ]] || npm ci --no-audit --no-fund
bash scripts/prereqs.sh
mkdir -p .tmp
rm -f .tmp/vitest-results.json
rm -f coverage/coverage-summary.json
# The whole suite measures coverage and enforces the floor in vitest.config.ts; a run narrowed by
# arguments (`npm test -- test/unit/x.test.ts`) would miss it by construction, so it measures none.
coverage=()
(($#)) || coverage=(--coverage.enabled)
set +e
node_modules/.bin/vitest run "${coverage[@]}" --reporter=default --reporter=json --outputFile.json=.tmp/vitest-results.json "$@"
status=$?
set -e
if [[ -f coverage/coverage-summary.json ]]; then
  node -e '
    const t = require("./coverage/coverage-summary.json").total;
    console.log("coverage: " + ["statements", "branches", "functions", "lines"].map((k) => `${k} ${t[k].pct}%`).join(", ") + " (floor in vitest.config.ts)");
  '
  # Every test can pass and the run still fail: vitest printed "ERROR: Coverage for ... does not meet".
  ((status == 0)) || echo "vitest exit status $status: a failed test above, or coverage under its floor"
fi
# One plain closing line, whatever the reporter printed above it.
node -e '
  const r = require("./.tmp/vitest-results.json");
  const skipped = r.numPendingTests + r.numTodoTests;
  // A suite whose setup failed fails no test by itself (its tests show as skipped): count it.
  const failed = r.numFailedTests > 0 ? r.numFailedTests : r.success ? 0 : Math.max(1, r.numFailedTestSuites);
  console.log(`tests: ${r.numPassedTests} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ""));
' 2>/dev/null || echo "tests: no result file (vitest exit status $status)"
exit "$status"
