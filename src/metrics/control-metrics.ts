import { Counter, type Registry } from 'prom-client';
import { familiesOf, type MetricFamily } from './families.js';

/**
 * Control telemetry (our own prefix): every command through the one ControlClient, HTTP or
 * remediation alike, and the ones refused before they were sent. Registered by the control module.
 */
export class ControlMetrics {
  readonly commands: Counter<'command' | 'outcome'>;
  readonly families: readonly MetricFamily[];

  constructor(registry: Registry, prefix: string) {
    this.commands = new Counter({
      name: `${prefix}control_commands_total`,
      help: 'Control commands, one per request, by command and outcome (ok, partial, error, no_reply, sent, dry_run, invalid, broker_unavailable, failed, refused).',
      labelNames: ['command', 'outcome'],
      registers: [registry],
    });
    this.families = familiesOf([this.commands]);
  }
}
