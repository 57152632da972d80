import type { ErrorKind } from '../control/replies.js';
import type { Alert } from './alertmanager.js';
import type { DangerousAction, RemediationAction } from './rules.js';

/** What remediation needs from the rest of the service: live cluster view and control. */
export interface RemediationExecutor {
  brokerConnected(): boolean;
  /** Live workers currently consuming `queue`. */
  consumersOf(queue: string): string[];
  /** Live workers whose name matches the glob. */
  matching(pattern: string): string[];
  /**
   * Is this node name a live worker? Used for `worker_label` targets, whose names come from an
   * alert: a worker that is gone (or never was) gets no command and no reply timeout. Without
   * it, the label is trusted and bounds or the reply timeout find out.
   */
  isLive?(worker: string): boolean;
  /** Live pool figures per worker (stats), for bounds. Missing workers are absent from the map. */
  poolStats(workers: string[]): Promise<Map<string, { processes?: number; autoscaler?: { min: number; max: number } }>>;
  /** purge_queue: empties the queue (on Redis every priority list) and answers how many messages went. */
  purgeQueue?(queue: string): Promise<number>;
  /** Sends the command to exactly these workers; never to an empty list. */
  /** keepProcesses: pool_shrink's floor (the rule's bounds.min_pool_processes), kept by the control client too. */
  run(action: RemediationAction, args: Record<string, unknown>, workers: string[], keepProcesses?: number): Promise<TargetOutcome[]>;
}

export interface TargetOutcome {
  worker: string;
  status: 'ok' | 'error' | 'no_reply';
  message?: string;
  /** The reply mapper's error kind (src/control/replies.ts), e.g. pool_busy. */
  kind?: ErrorKind;
}

export type SuppressReason =
  | 'duplicate'
  | 'cooldown'
  | 'bound'
  | 'cap'
  | 'kill_switch'
  | 'no_target'
  | 'in_flight'
  | 'not_allowed'
  | 'nothing_to_revert'
  /** scale_deployment: an HPA or KEDA ScaledObject owns the Deployment and would overwrite it. */
  | 'autoscaler_owned'
  /** verify: the same action on this alert was verified ineffective; not repeated blindly. */
  | 'ineffective';

/** What scale_deployment did to a Deployment, and what Celery showed of it afterwards. */
export interface DeploymentChange {
  namespace: string;
  name: string;
  before: number;
  after: number;
  /** Concurrent writers met (409s) before the write went through. */
  conflicts?: number;
  /** Scale-down: cancel_consumer on the workers of the pods that go, before the count dropped. */
  cancelled?: TargetOutcome[];
  /** When the workers of the Deployment's pods came online and consumed the queue. */
  confirmation?: { confirmed: boolean; queue?: string; workers: Array<{ worker: string; online_at: string }>; seconds: number };
}
export type DecisionOutcome = 'acted' | 'failed' | 'no_reply' | 'dry_run' | 'suppressed' | 'proposed';

export interface Decision {
  rule: string;
  action: RemediationAction;
  outcome: DecisionOutcome;
  reason?: SuppressReason | 'bad_arguments' | 'broker_unavailable' | 'kubernetes' | 'error';
  alert: { fingerprint: string; startsAt: string; status: Alert['status']; labels: Record<string, string> };
  arguments?: Record<string, unknown>;
  targets: string[];
  skipped: Array<{ worker: string; reason: SuppressReason; detail?: string }>;
  results?: TargetOutcome[];
  /** mode approve: the proposal this decision filed, or the principal whose approval it carried out. */
  proposal?: string;
  approved_by?: string;
  /** verify.escalate_to: the rule whose action was verified ineffective, so this one ran instead. */
  escalated_from?: string;
  /** scale_deployment: the Deployment's replicas before → after, and the confirmation. */
  deployment?: DeploymentChange;
  /** purge_queue: the queue and how many messages the purge removed. */
  purged?: { queue: string; removed: number };
  /** Why a decision failed before any command was sent (outcome failed, reason error/broker_unavailable). */
  error?: string;
}

export interface RemediationOptions {
  dryRun: boolean;
  /** The kill switch at start when no shared one is handed in (see RemediationDeps). */
  killSwitch: boolean;
  allowDangerous: readonly DangerousAction[];
  globalCap?: { count: number; windowSeconds: number };
  /** How long an alert instance is remembered for idempotency and shrink-back. */
  memorySeconds: number;
  /** Upper bound on one action's duration, for the in-flight lock. */
  inFlightSeconds: number;
  /** A shrink refused because every pool process is busy is tried again this often. */
  busyShrinkRetries: number;
  busyShrinkRetryMs: number;
  /** How long a grow or shrink counts as pending: longer than the pool's 5 s maintenance tick. */
  pendingResizeMs?: number;
  /** scale_deployment: how long to watch for the new workers to come online. */
  confirmMs?: number;
  /** mode approve: how long a proposal waits for an answer. */
  proposalTtlMs?: number;
}
