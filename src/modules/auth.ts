import { createAuth, type Auth } from '../auth/index.js';
import type { Clock } from '../clock.js';
import type { Config } from '../config/load.js';
import type { Logger } from '../log.js';
import type { FeatureModule } from './module.js';

export interface AuthModuleParts {
  clock: Clock;
  logger: Logger;
  /** The service terminates TLS itself: session cookies are then Secure and __Host- by default. */
  servedOverTls: boolean;
}

export interface AuthModule extends FeatureModule {
  /** Handed to every feature that checks a role; its middleware and /login routes have their own slot in http/app.ts. */
  readonly auth: Auth;
}

/**
 * Sessions, credentials and sign-in. No `routers` of its own: sessions, `authenticate` and the
 * /login routes sit at a fixed place in the security order, which http/app.ts owns.
 */
export function createAuthModule(config: Config, parts: AuthModuleParts): AuthModule {
  const auth = createAuth(config.auth, parts);
  return { name: 'auth', auth, routers: {}, telemetry: [], stop: () => auth.stop() };
}
