import type { FeatureRoutes } from '../http/app.js';

/**
 * One feature of the service, built by one constructor from the config and the parts it uses
 * (`create…Module(config, parts)`); hooks into other features are constructor arguments, never
 * setters. service.ts lists the modules; http/app.ts mounts their routers in the security order.
 *
 * Telemetry: a module registers its own families in the prom-client `Registry` it is handed
 * (under `metrics.self_prefix`, families in metrics/), values read at scrape time through
 * prom-client's `collect()` or, for the exporter, its one `SelfMetrics.collect()` before the
 * registry renders. Nothing central lists them.
 *
 * Parts built in service.ts are those several modules share (the registry, the task store and
 * its persistence, the audit log, `ActionMetrics`, the payload rule, the task-list bound); a
 * part only one module uses is built inside that module, from the config.
 */
export interface FeatureModule {
  readonly name: string;
  readonly routers: FeatureRoutes;
  /** Background work (timers, connections opened on start). */
  start?(): void;
  /** Releases what the module holds; called once, in service.ts's stop order. */
  stop?(): Promise<void> | void;
}
