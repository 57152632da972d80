import { Redis } from 'ioredis';
import type { AuditLog } from '../audit/audit-log.js';
import type { Clock } from '../clock.js';
import type { RemediationConfig } from '../config/remediation-schema.js';
import type { ControlClient } from '../control/client.js';
import type { Logger } from '../log.js';
import type { ActionMetrics } from '../metrics/remediation-metrics.js';
import type { WorkerRegistry } from '../state/workers.js';
import type { BrokerTransport } from '../transport/transport.js';
import { Remediator } from './engine.js';
import { ClusterExecutor } from './executor.js';
import { LocalKillSwitch, RedisKillSwitch, type KillSwitch } from './kill-switch.js';
import { loadConfiguredRules, type RemediationRule } from './rules.js';
import type { KubernetesConfig } from '../config/kubernetes-schema.js';
import { KubernetesClient } from '../kubernetes/client.js';
import { kubeCredentials, KubeCredentialsError } from '../kubernetes/credentials.js';
import type { KubernetesParts } from './deployments.js';
import { MemoryState, RedisState, type RemediationState } from './state.js';

export interface RemediationParts {
  transport: BrokerTransport;
  control: ControlClient;
  workers: WorkerRegistry;
  audit: AuditLog;
  metrics: ActionMetrics;
  logger: Logger;
  clock: Clock;
  kubernetes: KubernetesConfig;
  /** A queue's time to drain now (s), for verify. */
  timeToDrain?: (queue: string) => Promise<number | undefined>;
}

export interface Remediation {
  readonly remediator: Remediator;
  /** Stops the kill-switch refresh and closes the shared-state connection. */
  close(): void;
}

/**
 * The remediation engine as `remediation:` configures it: rules loaded (throws RulesError), state
 * and kill switch in memory for one replica or in Redis for several, tunables from the config.
 */
export function createRemediation(r: RemediationConfig, parts: RemediationParts): Remediation {
  const { clock, logger } = parts;
  // First, so an invalid rules file stops the start before any connection is opened.
  const rules = loadConfiguredRules(r);
  const now = () => clock.nowMs();
  let state: RemediationState = new MemoryState(now, {
    maxEntries: r.max_state_entries,
    onEvict: (n) => parts.metrics.stateEvictions.inc(n),
  });
  let killSwitch: KillSwitch = new LocalKillSwitch(r.kill_switch);
  let redis: Redis | undefined;
  if (r.state_redis_url) {
    // Replicas behind one URL share idempotency, cooldowns and the kill switch here (SET NX PX).
    redis = new Redis(r.state_redis_url.reveal(), { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: false });
    redis.on('error', (e: Error) => logger.warn({ err: e.message }, 'remediation state Redis error'));
    state = new RedisState(redis, r.state_key_prefix, now);
    killSwitch = new RedisKillSwitch(redis, r.state_key_prefix, r.kill_switch, r.kill_switch_refresh_seconds * 1000, (e) =>
      logger.debug({ err: e.message }, 'shared kill switch not read; the last value read stays in force'),
    );
  }
  const kubernetes = kubernetesParts(parts.kubernetes, rules, logger);
  const remediator = new Remediator(
    rules,
    new ClusterExecutor(parts.transport, parts.control, parts.workers),
    state,
    parts.audit,
    parts.metrics,
    logger.child({ component: 'remediation' }),
    {
      dryRun: r.dry_run,
      killSwitch: r.kill_switch,
      allowDangerous: r.allow_dangerous_actions,
      globalCap: { count: r.max_actions.count, windowSeconds: r.max_actions.window_seconds },
      memorySeconds: r.memory_seconds,
      inFlightSeconds: r.in_flight_seconds,
      busyShrinkRetries: r.busy_shrink_retries,
      busyShrinkRetryMs: r.busy_shrink_retry_seconds * 1000,
      pendingResizeMs: r.pending_resize_seconds * 1000,
      confirmMs: parts.kubernetes.confirm_seconds * 1000,
      proposalTtlMs: r.proposal_expire_seconds * 1000,
    },
    { killSwitch, now, ...(kubernetes ? { kubernetes } : {}), ...(parts.timeToDrain ? { timeToDrain: parts.timeToDrain } : {}) },
  );
  return {
    remediator,
    close: () => {
      remediator.oversight.stop();
      killSwitch.stop();
      redis?.disconnect();
    },
  };
}

/**
 * The Kubernetes API for scale_deployment: kubernetes.kubeconfig, else the pod's service account.
 * Without credentials a rules file that scales Deployments stops the start (a clear error);
 * one that does not simply has no Kubernetes API.
 */
function kubernetesParts(config: KubernetesConfig, rules: readonly RemediationRule[], logger: Logger): KubernetesParts | undefined {
  const scales = rules.some((r) => r.action === 'scale_deployment');
  try {
    const creds = kubeCredentials(config);
    logger.info({ server: creds.server, source: creds.source }, 'Kubernetes API for scale_deployment');
    return { client: new KubernetesClient(creds, config.request_timeout_seconds * 1000), config, defaultNamespace: creds.namespace };
  } catch (e) {
    if (!(e instanceof KubeCredentialsError)) throw e;
    if (scales) throw e;
    return undefined;
  }
}
