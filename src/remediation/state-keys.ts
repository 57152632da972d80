/**
 * The keys remediation keeps in its state store. With `remediation.state_redis_url` every replica
 * reads and writes these same keys (after `remediation.state_key_prefix`), so they are a wire
 * format between versions of this service: change one and STATE_KEYS_VERSION goes up, so a
 * replica of another version never misreads them (it starts with a clean memory instead).
 */
export const STATE_KEYS_VERSION = 1;

const v = `v${STATE_KEYS_VERSION}:`;

/** An alert instance is remembered per rule and step: it acts once however often it is resent. */
export interface AlertInstance {
  readonly fingerprint: string;
  readonly startsAt: string;
  readonly status: string;
}

export const stateKeys = {
  /** Held once the decision to act (or to dry-run) is taken, for remediation.memory_seconds. */
  idempotency: (alert: AlertInstance, rule: string, action: string, dryRun: boolean): string =>
    `${v}${dryRun ? 'dry-idem' : 'idem'}:${alert.fingerprint}:${alert.startsAt}:${alert.status}:${rule}:${action}`,
  /**
   * Per rule, action and worker, for the rule's cooldown_seconds after a successful command. The
   * on_resolved step has its own: undoing (rate_limit → rate_limit 0, scale_deployment by 1 → by
   * -1) is the same action and must not wait for the cooldown of what it undoes.
   */
  cooldown: (rule: string, action: string, worker: string, resolvedStep = false): string =>
    `${v}cooldown:${rule}:${action}:${worker}${resolvedStep ? ':resolved' : ''}`,
  /** One action at a time per worker, across rules and replicas. */
  inFlight: (worker: string): string => `${v}inflight:${worker}`,
  /** Processes added or removed but not in `stats` yet (the pool's maintenance tick lags). */
  pendingResize: (action: 'pool_grow' | 'pool_shrink', worker: string): string => `${v}pending:${action}:${worker}`,
  /** What a firing alert grew on a worker, so its resolved notification shrinks back at most that. */
  grown: (alert: Pick<AlertInstance, 'fingerprint' | 'startsAt'>, rule: string, worker: string): string =>
    `${v}grown:${alert.fingerprint}:${alert.startsAt}:${rule}:${worker}`,
  /** Held once a rule in approve mode proposed for an alert instance: Alertmanager's resends file nothing more. */
  proposal: (alert: AlertInstance, rule: string, action: string): string =>
    `${v}proposed:${alert.fingerprint}:${alert.startsAt}:${alert.status}:${rule}:${action}`,
  /** An alert instance Alertmanager reported resolved, whichever replica heard it (verify). */
  resolved: (alert: Pick<AlertInstance, 'fingerprint' | 'startsAt'>): string => `${v}resolved:${alert.fingerprint}:${alert.startsAt}`,
  /** A verified-ineffective action: the rule does not repeat it for this alert (by fingerprint) for verify.block_seconds. */
  ineffective: (rule: string, fingerprint: string): string => `${v}ineffective:${rule}:${fingerprint}`,
  /** Action counters per fixed window (the window number is appended by the store). */
  ruleCap: (rule: string): string => `${v}cap:${rule}`,
  globalCap: `${v}cap:*`,
  /** The kill switch every replica obeys: "1" stops every action, "0" lets them run. No expiry. */
  killSwitch: `${v}kill_switch`,
} as const;
