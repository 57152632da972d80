import { Counter, Gauge, type Registry } from 'prom-client';
import { familiesOf, type MetricFamily } from './families.js';

/**
 * Remediation telemetry (our own prefix), registered by the remediation module whether or not
 * remediation is enabled. Names are shared with the dashboard. The control commands remediation
 * sends are counted by the control module (control-metrics.ts), like every other command.
 */
export class ActionMetrics {
  readonly decisions: Counter<'rule' | 'action' | 'outcome'>;
  readonly suppressed: Counter<'rule' | 'action' | 'reason'>;
  readonly killSwitch: Gauge;
  readonly webhooks: Counter<'status'>;
  readonly stateEvictions: Counter;
  readonly verifications: Counter<'rule' | 'result'>;
  readonly families: readonly MetricFamily[];

  constructor(registry: Registry, prefix: string) {
    const r = [registry];
    this.decisions = new Counter({
      name: `${prefix}remediation_decisions_total`,
      help: 'Remediation decisions, one per alert judged by a rule, by outcome (acted, failed, no_reply, dry_run, suppressed).',
      labelNames: ['rule', 'action', 'outcome'],
      registers: r,
    });
    this.suppressed = new Counter({
      name: `${prefix}remediation_suppressed_total`,
      help: 'Remediation actions not taken, by reason.',
      labelNames: ['rule', 'action', 'reason'],
      registers: r,
    });
    this.killSwitch = new Gauge({
      name: `${prefix}remediation_kill_switch`,
      help: '1 while the remediation kill switch stops every action.',
      registers: r,
    });
    this.webhooks = new Counter({
      name: `${prefix}remediation_webhooks_total`,
      help: 'Alertmanager webhook deliveries, by answer status class.',
      labelNames: ['status'],
      registers: r,
    });
    this.stateEvictions = new Counter({
      name: `${prefix}remediation_state_evictions_total`,
      help: 'Remembered remediation keys forgotten before their expiry because the in-memory state was full (remediation.max_state_entries).',
      registers: r,
    });
    this.verifications = new Counter({
      name: `${prefix}remediation_verifications_total`,
      help: 'Acted decisions of rules with verify, by rule and result: effective (the alert resolved or the time to drain fell within verify.within_seconds) or ineffective.',
      labelNames: ['rule', 'result'],
      registers: r,
    });
    this.families = familiesOf([this.decisions, this.suppressed, this.killSwitch, this.webhooks, this.stateEvictions, this.verifications]);
  }
}

/**
 * The rules file's reloads (SIGHUP, POST …/rules/reload), counted whether or not remediation is
 * enabled: a file checked while remediation is off shows its failures too.
 */
export class RulesReloadMetrics {
  readonly #reloads: Counter<'outcome'>;
  readonly #lastSuccessful: Gauge;
  readonly families: readonly MetricFamily[];

  constructor(registry: Registry, prefix: string) {
    const r = [registry];
    this.#reloads = new Counter({
      name: `${prefix}rules_reloads_total`,
      help: 'Remediation rules file reloads, by outcome (success, failure).',
      labelNames: ['outcome'],
      registers: r,
    });
    this.#lastSuccessful = new Gauge({
      name: `${prefix}rules_last_reload_successful`,
      help: '1 if the last remediation rules reload succeeded (or none was tried), 0 if it failed.',
      registers: r,
    });
    this.#lastSuccessful.set(1);
    this.families = familiesOf([this.#reloads, this.#lastSuccessful]);
  }

  reloaded(outcome: 'success' | 'failure'): void {
    this.#reloads.inc({ outcome });
    this.#lastSuccessful.set(outcome === 'success' ? 1 : 0);
  }
}
