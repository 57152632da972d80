import { defineConfig } from 'vitest/config';

// Two projects: pure-logic unit tests run wide; integration suites drive real brokers and real
// Celery workers, which are heavy on a 2-core machine, so their files run at most two at a time.
export default defineConfig({
  test: {
    // `npm test` turns coverage on for the full run (scripts/test.sh); a run of a few files does not
    // check the floor. Integration suites start the service in-process, so they count too.
    coverage: {
      provider: 'v8',
      include: ['src/**/*.ts'],
      reporter: ['text-summary', 'json-summary', 'html'],
      reportsDirectory: 'coverage',
      // The summary is wanted most when something failed.
      reportOnFailure: true,
      // The floor CI enforces: what the full suite reached when it was set (90.4 / 84.0 / 91.7 /
      // 93.3 %), less about 1.5 points for paths only some runs take (reconnects, timeouts). Raise
      // it when coverage grows; lowering it needs a reason in the commit message.
      thresholds: { statements: 89, branches: 82, functions: 90, lines: 91 },
    },
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          exclude: ['test/integration/**/*.serial.test.ts'],
          // Unit tests first (fast feedback), then the broker suites with their own parallelism.
          sequence: { groupOrder: 1 },
          globalSetup: ['test/support/global-setup.ts'],
          pool: 'forks',
          maxWorkers: 2,
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
      {
        // Load-sensitive suites (a publisher racing our subscriber): alone, after everything else.
        test: {
          name: 'integration-serial',
          include: ['test/integration/**/*.serial.test.ts'],
          globalSetup: ['test/support/global-setup.ts'],
          pool: 'forks',
          maxWorkers: 1,
          fileParallelism: false,
          sequence: { groupOrder: 2 },
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
