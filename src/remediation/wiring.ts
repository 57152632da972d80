import type { AuditLog } from '../audit/audit-log.js';
import type { Clock } from '../clock.js';
import type { RemediationConfig } from '../config/remediation-schema.js';
import type { ControlClient } from '../control/client.js';
import type { Logger } from '../log.js';
import type { ActionMetrics } from '../metrics/remediation-metrics.js';
import type { WorkerRegistry } from '../state/workers.js';
import { openSharedRedis, type BrokerConnections } from '../transport/index.js';
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
  /** How to reach `state_redis_url`: with the broker's TLS files, as every other connection. */
  connections: BrokerConnections;
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
  const { state, killSwitch, close } = createRemediationState(r, parts.connections, {
    now,
    onEvict: (n) => parts.metrics.stateEvictions.inc(n),
    logger,
  });
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
      close();
    },
  };
}

export interface RemediationStateParts {
  readonly state: RemediationState;
  readonly killSwitch: KillSwitch;
  /** Stops the kill-switch refresh and closes the shared-state connection, if any. */
  close(): void;
}

/**
 * Idempotency, cooldowns and the kill switch: in memory for one replica, or in the Redis of
 * `state_redis_url` for several behind one URL (SET NX PX), reached through transport/ with the
 * broker's TLS files like every other connection.
 */
export function createRemediationState(
  r: RemediationConfig,
  connections: BrokerConnections,
  /** `onEvict`: entries the in-memory state dropped at its size bound. */
  parts: { now: () => number; onEvict: (n: number) => void; logger: Logger },
): RemediationStateParts {
  const { now, logger } = parts;
  if (!r.state_redis_url) {
    const killSwitch = new LocalKillSwitch(r.kill_switch);
    return {
      state: new MemoryState(now, { maxEntries: r.max_state_entries, onEvict: parts.onEvict }),
      killSwitch,
      close: () => killSwitch.stop(),
    };
  }
  const redis = openSharedRedis(connections.redisAt(r.state_redis_url), 'celery-autopilot-remediation', logger);
  const killSwitch = new RedisKillSwitch(redis, r.state_key_prefix, r.kill_switch, r.kill_switch_refresh_seconds * 1000, (e) =>
    logger.debug({ err: e.message }, 'shared kill switch not read; the last value read stays in force'),
  );
  return {
    state: new RedisState(redis, r.state_key_prefix, now),
    killSwitch,
    close: () => {
      killSwitch.stop();
      redis.disconnect();
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
