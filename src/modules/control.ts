import type { Registry } from 'prom-client';
import type { AuditLog } from '../audit/audit-log.js';
import type { Auth } from '../auth/index.js';
import { configuredBrokerApi } from '../broker-api/rabbitmq-management.js';
import type { Clock } from '../clock.js';
import type { Config } from '../config/load.js';
import { answeredCommand, ControlClient } from '../control/client.js';
import { COMMANDS } from '../control/commands.js';
import { WorkerSnapshot } from '../control/worker-snapshot.js';
import type { QueueCollector } from '../exporter/queue-collector.js';
import { apiV1 } from '../http/api-v1.js';
import { controlRoutes, type ControlRoutes } from '../http/control-routes.js';
import { flowerControlApi } from '../http/flower-control-api.js';
import { flowerWorkersApi } from '../http/flower-workers-api.js';
import type { Logger } from '../log.js';
import { ControlMetrics } from '../metrics/control-metrics.js';
import type { WorkerRegistry } from '../state/workers.js';
import type { PayloadRule } from '../tasks/payload.js';
import type { BrokerTransport } from '../transport/transport.js';
import type { FeatureModule } from './module.js';

export interface ControlModuleParts {
  /** Where the control commands are counted. */
  registry: Registry;
  transport: BrokerTransport;
  workers: WorkerRegistry;
  queues: QueueCollector;
  audit: AuditLog;
  auth: Auth;
  payload: PayloadRule;
  clock: Clock;
  logger: Logger;
  /** A worker answered a command that changes its pool or queues: its figures are re-read. */
  inspectionChanged: (worker: string) => void;
}

export interface ControlModule extends FeatureModule {
  /** Every control command, HTTP or remediation, goes through this one client. */
  readonly control: ControlClient;
  /** What Flower's /api/workers shows, refreshed in the background once someone asks. */
  readonly snapshot: WorkerSnapshot;
  /** The command routes' shared steps (role, validation, audit), for other features' routes. */
  readonly routes: ControlRoutes;
}

/** Remote control: the client, the workers snapshot, and Flower's worker and control paths with /api/v1. */
export function createControlModule(config: Config, parts: ControlModuleParts): ControlModule {
  const { workers, queues, auth, payload } = parts;
  const metrics = new ControlMetrics(parts.registry, config.metrics.self_prefix);
  const control = new ControlClient(parts.transport, { timeoutMs: config.control.reply_timeout_ms }, (command, outcome, result) => {
    metrics.commands.inc({ command, outcome });
    // HTTP or remediation alike: a pool or consumer change shows in the figures at once.
    if (result && command !== 'unknown' && COMMANDS.get(command)?.changesInspection) {
      for (const r of result.results) if (answeredCommand(r)) parts.inspectionChanged(r.worker);
    }
  });
  const snapshot = new WorkerSnapshot(
    control,
    parts.clock,
    parts.logger,
    {
      refreshSeconds: config.control.workers_refresh_seconds,
      forgetSeconds: Math.max(600, config.control.workers_refresh_seconds * 10),
    },
    workers,
  );
  const routes = controlRoutes({
    control,
    workers,
    queues,
    audit: parts.audit,
    auth,
    maxBodyBytes: config.control.max_body_bytes,
    refused: (command) => metrics.commands.inc({ command, outcome: 'refused' }),
    payload,
  });
  const flowerWorkers = flowerWorkersApi({
    snapshot,
    brokerApi: configuredBrokerApi(config),
    refreshSeconds: config.control.workers_refresh_seconds,
    auth,
    workers,
    queues,
    payload,
  });
  return {
    name: 'control',
    telemetry: metrics.families,
    control,
    snapshot,
    routes,
    routers: { routes: [flowerWorkers, flowerControlApi(routes), apiV1(routes)] },
    stop: () => snapshot.stop(),
  };
}
