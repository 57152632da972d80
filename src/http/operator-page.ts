import type { Router } from 'express';
import { managementQueues } from '../broker-api/rabbitmq-management.js';
import { consoleRouter } from '../console/index.js';
import type { Service } from '../service.js';

/** The operator console (src/console), wired to the running service. */
export function operatorConsole(service: Service): Router {
  const { broker, broker_api: brokerApi } = service.config;
  return consoleRouter({
    ...(brokerApi && broker.kind === 'amqp' ? { managementQueues: (names: string[]) => managementQueues(brokerApi, broker.vhost, names) } : {}),
    auth: service.auth,
    workers: service.workers,
    control: service.control,
    queues: () => service.queues.collect(),
    audit: service.audit,
    remediator: service.remediator,
    tasks: service.taskStore,
    payloadRole: service.config.tasks.payload_role,
    abortable: service.resultBackend !== undefined,
  });
}
