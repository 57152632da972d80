import type { AuditLog } from './audit/audit-log.js';
import type { Auth } from './auth/index.js';
import { managementQueues } from './broker-api/rabbitmq-management.js';
import type { Clock } from './clock.js';
import type { Config } from './config/load.js';
import type { ClusterSampler } from './console/cluster-sampler.js';
import type { IngestCounts } from './exporter/event-processor.js';
import type { BrokerStatus } from './service-telemetry.js';
import type { Secret } from './config/secret.js';
import type { ControlClient } from './control/client.js';
import type { WorkerSnapshot } from './control/worker-snapshot.js';
import type { QueueCollector } from './exporter/queue-collector.js';
import type { HttpDeps } from './http/app.js';
import type { WebhookCredentials } from './http/webhook-auth.js';
import type { Logger } from './log.js';
import type { ActionMetrics } from './metrics/remediation-metrics.js';
import { VERSION } from './metrics/self-metrics.js';
import type { Remediator } from './remediation/engine.js';
import type { WorkerRegistry } from './state/workers.js';
import type { ResultBackend, TaskPublisher, TaskStore } from './tasks/index.js';
import { PayloadRule } from './tasks/payload.js';
import { SubmitPolicy } from './tasks/submit-policy.js';
import { ResultWaiters } from './tasks/result-waiters.js';

/** How often waited results are read (one MGET for all of them). */
const RESULT_POLL_MS = 100;

/**
 * The parts of a running service the HTTP surface is built from. Declared here, field by field,
 * so this module (and http/) never imports the Service class: Service hands itself in.
 */
export interface ServiceHttpParts {
  readonly config: Config;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly auth: Auth;
  /** The service terminates TLS itself: HSTS is sent. */
  readonly servedOverTls: boolean;
  readonly registry: { readonly contentType: string };
  metricsChunks(): AsyncGenerator<string>;
  isReady(): boolean;
  readonly status: BrokerStatus;
  readonly processor: { readonly counts: IngestCounts };
  readonly sampler: ClusterSampler;
  readonly control: ControlClient;
  readonly workers: WorkerRegistry;
  readonly queues: QueueCollector;
  readonly audit: AuditLog;
  readonly actionMetrics: ActionMetrics;
  readonly taskStore: TaskStore | undefined;
  readonly taskPublisher: TaskPublisher;
  readonly resultBackend: ResultBackend | undefined;
  readonly workerSnapshot: WorkerSnapshot;
  readonly remediator: Remediator | undefined;
  readonly webhookCredentials: WebhookCredentials;
  reloadRules(): number;
}

/** What the HTTP surface gets from the service: explicit, so http/ never depends on Service itself. */
export function serviceHttpDeps(s: ServiceHttpParts): HttpDeps {
  const { config } = s;
  const brokerApi = brokerApiOf(config);
  return {
    version: VERSION,
    clock: s.clock,
    logger: s.logger,
    trustProxy: config.trust_proxy,
    auth: s.auth,
    publicUrl: config.auth.public_url,
    servedOverTls: s.servedOverTls,
    metrics: { contentType: s.registry.contentType, chunks: () => s.metricsChunks() },
    readiness: () => ({ ready: s.isReady(), broker: { ...s.status } }),
    cluster: { control: s.control, workers: s.workers, queues: s.queues },
    audit: s.audit,
    controlMaxBodyBytes: config.control.max_body_bytes,
    actionMetrics: s.actionMetrics,
    urlPrefix: config.url_prefix,
    payload: new PayloadRule(config.tasks.payload_role),
    tasks: taskHttpDeps(s, brokerApi),
    console: {
      sampler: s.sampler,
      health: () => ({
        ...s.status,
        lastEventAtMs: s.processor.counts.lastEventAtMs,
        eventsDropped: [...s.processor.counts.drops.values()].reduce((a, b) => a + b, 0),
      }),
      ...(brokerApi ? { managementQueues: (names: string[]) => managementQueues(brokerApi.url, brokerApi.vhost, names) } : {}),
      tasks: s.taskStore,
      abortable: s.resultBackend !== undefined,
    },
    ...(s.remediator
      ? {
          remediation: {
            remediator: s.remediator,
            credentials: s.webhookCredentials,
            maxBodyBytes: config.remediation.webhook.max_body_bytes,
            reloadRules: () => s.reloadRules(),
          },
        }
      : {}),
  };
}

type BrokerApi = { url: Secret; vhost: string };

/** Flower's broker_api (RabbitMQ management), when configured and the broker is RabbitMQ. */
function brokerApiOf(config: Config): BrokerApi | undefined {
  const { broker, broker_api: url } = config;
  return url && broker.kind === 'amqp' ? { url, vhost: broker.vhost } : undefined;
}

function taskHttpDeps(s: ServiceHttpParts, brokerApi: BrokerApi | undefined): HttpDeps['tasks'] {
  const { config } = s;
  const t = config.tasks;
  return {
    read: { store: s.taskStore },
    submit: {
      publisher: s.taskPublisher,
      policy: new SubmitPolicy(
        { allow: t.submit.allow, createMissingQueues: t.submit.create_missing_queues, listedQueues: config.metrics.queues },
        (queue) => s.workers.consumersOf(queue).length > 0,
      ),
      submitRole: t.submit.role,
      store: s.taskStore,
      backend: s.resultBackend,
      waiters: s.resultBackend
        ? new ResultWaiters(s.resultBackend, { maxWaiters: t.max_result_waiters, pollMs: RESULT_POLL_MS })
        : undefined,
      workers: s.workerSnapshot,
      defaultQueue: config.metrics.default_queue_name,
      maxWaitSeconds: t.max_result_wait_seconds,
      maxBodyBytes: config.control.max_body_bytes,
    },
    workers: { snapshot: s.workerSnapshot, brokerApi, refreshSeconds: config.control.workers_refresh_seconds },
  };
}
