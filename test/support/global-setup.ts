import { execFileSync } from 'node:child_process';

/**
 * Integration suites need the real brokers and Debian's Celery. scripts/prereqs.sh installs and
 * starts them under `npm test`; this check fails the run loudly when they are missing anyway
 * (for example `npx vitest` run directly on a machine that lacks them), rather than skipping.
 */
export default function setup(): void {
  try {
    execFileSync('bash', ['scripts/prereqs.sh'], { stdio: ['ignore', 'inherit', 'inherit'] });
  } catch {
    throw new Error('integration prerequisites missing: see the "prereqs: MISSING" line above');
  }
}
