import type { FeatureRoutes } from '../http/app.js';

/**
 * One feature of the service, built by one constructor from the config and the parts it uses
 * (`create…Module(config, parts)`); hooks into other features are constructor arguments, never
 * setters. service.ts lists the modules; http/app.ts mounts their routers in the security order.
 */
export interface FeatureModule {
  readonly name: string;
  readonly routers: FeatureRoutes;
  /** Background work (timers, connections opened on start). */
  start?(): void;
  /** Releases what the module holds; called once, in service.ts's stop order. */
  stop?(): Promise<void> | void;
}
