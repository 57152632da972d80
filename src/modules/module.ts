import type { FeatureRoutes } from '../http/app.js';
import type { MetricFamily } from '../metrics/families.js';

/**
 * What registered a set of metric families in the shared registry: a feature module, or a shared
 * part service.ts builds (the task persistence). Each family has exactly one owner; the unit test
 * test/unit/metrics-reference.test.ts fails on a family nobody lists or two owners list, and
 * docs/metrics.md is generated from the owners (`npm run docs:metrics`).
 */
export interface TelemetryOwner {
  readonly name: string;
  /** The families it registered (with the configured prefixes), in registration order. */
  readonly telemetry: readonly MetricFamily[];
}

/**
 * One feature of the service, built by one constructor from the config and the parts it uses
 * (`create…Module(config, parts)`); hooks into other features are constructor arguments, never
 * setters. service.ts lists the modules; http/app.ts mounts their routers in the security order.
 *
 * Telemetry: a module registers its own families in the prom-client `Registry` it is handed
 * (under `metrics.self_prefix`, families in metrics/, each class listing its `families`) and
 * lists them as its `telemetry`; values are read at scrape time through prom-client's
 * `collect()` or, for the exporter, its one `SelfMetrics.collect()` before the registry renders.
 *
 * Parts built in service.ts are those several modules share (the registry, the task store and
 * its persistence, the audit log, the payload rule, the task-list bound); a part only one
 * module uses is built inside that module (its telemetry families, what it reads from the config).
 */
export interface FeatureModule extends TelemetryOwner {
  readonly routers: FeatureRoutes;
  /** Background work (timers, connections opened on start). */
  start?(): void;
  /** Releases what the module holds; called once, in service.ts's stop order. */
  stop?(): Promise<void> | void;
}
