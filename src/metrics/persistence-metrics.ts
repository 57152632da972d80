import { Counter, type Registry } from 'prom-client';
import { familiesOf, type MetricFamily } from './families.js';

/**
 * tasks.persist's telemetry: the rows of its SQLite file left out at start. The counts live in
 * persistence/ as plain numbers (`persistedRowsSkipped`); prom-client reads them when it renders.
 * Answers the families it registered (the persistence's telemetry, listed in service.ts).
 */
export function registerPersistenceMetrics(
  registry: Registry,
  prefix: string,
  skipped: () => Iterable<[table: string, reason: string, count: number]>,
): MetricFamily[] {
  const rowsSkipped = new Counter({
    name: `${prefix}persisted_rows_skipped_total`,
    help: 'Rows of tasks.persist not restored at start (not JSON, or a field of the wrong type or length), by table and reason.',
    labelNames: ['table', 'reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [table, reason, n] of skipped()) this.inc({ table, reason }, n);
    },
  });
  return familiesOf([rowsSkipped]);
}
