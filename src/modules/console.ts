import type { RequestHandler } from 'express';
import type { AuditLog } from '../audit/audit-log.js';
import type { Auth } from '../auth/index.js';
import { configuredBrokerApi, managementQueues } from '../broker-api/rabbitmq-management.js';
import type { Config } from '../config/load.js';
import type { ControlClient } from '../control/client.js';
import { ClusterSampler, type SamplerParts } from '../console/cluster-sampler.js';
import { consoleRouter } from '../console/index.js';
import type { RerunRule } from '../console/task.js';
import type { IngestCounts } from '../exporter/event-processor.js';
import type { QueueCollector } from '../exporter/queue-collector.js';
import type { Remediator } from '../remediation/engine.js';
import type { WorkerRegistry } from '../state/workers.js';
import type { TaskStore } from '../tasks/index.js';
import type { PayloadRule } from '../tasks/payload.js';
import type { FeatureModule } from './module.js';

export interface ConsoleModuleParts extends Omit<SamplerParts, 'config' | 'queues'> {
  /** The event path's counts: when the last event came, how many were dropped (the health line). */
  ingest: IngestCounts;
  auth: Auth;
  workers: WorkerRegistry;
  control: ControlClient;
  queues: QueueCollector;
  audit: AuditLog;
  remediator: Remediator | undefined;
  store: TaskStore | undefined;
  payload: PayloadRule;
  /** One bound for the API's and the console's task lists together. */
  heavyRead: RequestHandler;
  /** A result backend is configured: Abort can work. */
  abortable: boolean;
  /** Who may re-run which task: the Re-run buttons shown. */
  rerun: RerunRule;
}

/** The operator console at /ui. */
export interface ConsoleModule extends FeatureModule {
  /** The last hour of the cluster, one reading per 10 s (not on the event path). */
  readonly sampler: ClusterSampler;
}

export function createConsoleModule(config: Config, parts: ConsoleModuleParts): ConsoleModule {
  const brokerApi = configuredBrokerApi(config);
  const { queues, store, ingest } = parts;
  const sampler = new ClusterSampler({ ...parts, config });
  return {
    name: 'console',
    telemetry: [],
    sampler,
    start: () => sampler.start(),
    stop: () => sampler.stop(),
    routers: {
      routes: [
        consoleRouter({
          auth: parts.auth,
          workers: parts.workers,
          control: parts.control,
          audit: parts.audit,
          remediator: parts.remediator,
          payload: parts.payload,
          heavyRead: parts.heavyRead,
          abortable: parts.abortable,
          rerun: parts.rerun,
          store,
          sampler,
          health: () => ({
            ...parts.status,
            lastEventAtMs: ingest.lastEventAtMs,
            eventsDropped: [...ingest.drops.values()].reduce((a, b) => a + b, 0),
          }),
          queues: () => queues.collect(),
          ...(brokerApi ? { managementQueues: (names: string[]) => managementQueues(brokerApi.url, brokerApi.vhost, names) } : {}),
        }),
      ],
    },
  };
}
