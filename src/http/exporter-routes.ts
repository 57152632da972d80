import { Router } from 'express';
import type { Auth } from '../auth/index.js';
import { metricsEndpoint, type MetricsSource } from './metrics-endpoint.js';

/** Broker connection state as readiness reports it; `lastError` may name internal hosts. */
export interface Readiness {
  ready: boolean;
  broker: { connected: boolean; subscribed: boolean; reconnects: number; lastError?: string | undefined };
}

export interface ExporterRoutesDeps {
  readonly auth: Pick<Auth, 'protectMetrics' | 'knownCaller'>;
  readonly metrics: MetricsSource;
  readiness(): Readiness;
}

/**
 * The exporter's endpoints: /metrics (a viewer's when `auth.protect_metrics`) and /-/ready.
 * After authentication, ahead of every other feature's routes: service.ts lists the exporter first.
 */
export function exporterRoutes(deps: ExporterRoutesDeps): Router {
  const router = Router();
  router.get('/metrics', deps.auth.protectMetrics, metricsEndpoint(deps.metrics));
  router.get('/-/ready', (req, res) => {
    const { ready, broker } = deps.readiness();
    // The broker's error names internal hosts and addresses: only for a caller we know (and the logs).
    const { lastError, ...rest } = broker;
    const detail = lastError && deps.auth.knownCaller(req) ? { lastError } : {};
    res.status(ready ? 200 : 503).json({ ready, broker: { ...rest, ...detail } });
  });
  return router;
}
