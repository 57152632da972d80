import type { RequestHandler } from 'express';
import type { AuditLog } from '../audit/audit-log.js';
import type { Auth } from '../auth/index.js';
import { configuredBrokerApi, managementQueues } from '../broker-api/rabbitmq-management.js';
import type { Config } from '../config/load.js';
import type { ControlClient } from '../control/client.js';
import { consoleRouter } from '../console/index.js';
import type { QueueCollector } from '../exporter/queue-collector.js';
import type { Remediator } from '../remediation/engine.js';
import type { WorkerRegistry } from '../state/workers.js';
import type { TaskStore } from '../tasks/index.js';
import type { PayloadRule } from '../tasks/payload.js';
import type { FeatureModule } from './module.js';

export interface ConsoleModuleParts {
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
}

/** The operator console at /ui. */
export function createConsoleModule(config: Config, parts: ConsoleModuleParts): FeatureModule {
  const brokerApi = configuredBrokerApi(config);
  const { queues, store } = parts;
  return {
    name: 'console',
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
          tasks: store,
          queues: () => queues.collect(),
          ...(brokerApi ? { managementQueues: (names: string[]) => managementQueues(brokerApi.url, brokerApi.vhost, names) } : {}),
        }),
      ],
    },
  };
}
