// Writes docs/metrics.md from each module's telemetry (src/metrics-reference.ts), on Linux, where
// the service runs: prom-client registers some process_* families there only.
//   npm run docs:metrics            rewrite the file
//   npm run docs:metrics -- --check exit 1 when the file is stale (test/unit/metrics-reference.test.ts checks the same)
import { metricsMarkdown, serviceWithoutBroker } from '../src/metrics-reference.js';
import { writeGeneratedDoc } from './generated-doc.js';

writeGeneratedDoc('metrics.md', metricsMarkdown(serviceWithoutBroker().telemetry), 'npm run docs:metrics');
