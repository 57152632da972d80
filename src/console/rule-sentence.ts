import type { RuleSpec } from '../remediation/rules.js';

const VERBS: Readonly<Record<string, string>> = {
  pool_grow: 'grow the pool of',
  pool_shrink: 'shrink the pool of',
  autoscale: 'set the autoscaler of',
  add_consumer: 'add a queue consumer to',
  cancel_consumer: 'cancel a queue consumer on',
  rate_limit: 'set a rate limit on',
  time_limit: 'set time limits on',
  pool_restart: 'restart the pool of',
  shutdown: 'shut down',
  scale_deployment: 'scale',
  purge_queue: 'purge (every message lost)',
};

/** "1 h", "5 min", "30 s". */
export function duration(seconds: number): string {
  if (seconds >= 3600 && seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds >= 60 && seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

const value = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));

function trigger(r: RuleSpec): string {
  const { alertname, ...labels } = r.match.labels;
  const when = r.match.status === 'resolved' ? 'resolves' : r.match.status === 'any' ? 'fires or resolves' : 'fires';
  const conditions = [
    ...Object.entries(labels).map(([k, v]) => `${k}="${v}"`),
    ...Object.entries(r.match.labels_regex).map(([k, v]) => `${k} matching /${v}/`),
  ];
  return `When ${alertname ?? 'an alert'}${conditions.length ? ` with ${conditions.join(' and ')}` : ''} ${when}`;
}

function target(r: RuleSpec): string {
  const t = r.target;
  const allow = t.allow === undefined ? '' : ` (only workers matching ${[t.allow].flat().join(', ')})`;
  if (t.queue_label !== undefined)
    return r.action === 'scale_deployment'
      ? `the Deployment of the queue in its ${t.queue_label} label`
      : `the workers consuming the queue in its ${t.queue_label} label${allow}`;
  if (t.worker_label !== undefined) return `the worker named in its ${t.worker_label} label${allow}`;
  if (t.pattern !== undefined) return `the workers matching ${t.pattern}${allow}`;
  if (t.queue !== undefined) return `the queue ${t.queue}`;
  return `the Deployment ${t.deployment ?? ''}${t.namespace ? ` in ${t.namespace}` : ''}`;
}

function bounds(r: RuleSpec): string[] {
  const b = r.bounds;
  const out: string[] = [];
  if (r.action === 'pool_grow' && b.max_pool_processes !== undefined) out.push(`up to ${b.max_pool_processes} pool processes`);
  if (r.action === 'pool_shrink') out.push(`down to ${b.min_pool_processes} pool process${b.min_pool_processes === 1 ? '' : 'es'}`);
  if (b.max_autoscale !== undefined) out.push(`autoscale up to ${b.max_autoscale}`);
  if (b.min_replicas !== undefined && b.max_replicas !== undefined) out.push(`between ${b.min_replicas} and ${b.max_replicas} replicas`);
  return out;
}

/**
 * A rule as a sentence an on-call engineer reads at a glance: "When CeleryQueueBacklog fires,
 * grow the pool (n = 1) of the workers consuming the queue in its queue_name label, up to 4
 * pool processes; at most once per 5 min per target."
 */
export function ruleSentence(r: RuleSpec): string {
  const args = Object.entries(r.arguments).map(([k, v]) => `${k} = ${value(v)}`);
  const verb = VERBS[r.action] ?? `run ${r.action} on`;
  const withArgs = args.length ? ` (${args.join(', ')})` : '';
  let s = `${trigger(r)}, ${r.mode === 'approve' ? 'propose to ' : ''}${verb} ${target(r)}${withArgs}`;
  const limits = bounds(r);
  if (limits.length) s += `, ${limits.join(', ')}`;
  const pace: string[] = [];
  if (r.cooldown_seconds > 0) pace.push(`at most once per ${duration(r.cooldown_seconds)} per target`);
  if (r.max_actions) pace.push(`at most ${r.max_actions.count} times per ${duration(r.max_actions.window_seconds)}`);
  if (pace.length) s += `; ${pace.join(', ')}`;
  s += '.';
  if (r.mode === 'approve') s += ' It acts once an operator approves.';
  if (r.verify)
    s += ` Effective if the alert resolves within ${duration(r.verify.within_seconds)}${r.verify.escalate_to ? `; if not, the next firing runs ${r.verify.escalate_to}` : ''}.`;
  if (r.on_resolved) s += ` When the alert resolves: ${VERBS[r.on_resolved.action] ?? r.on_resolved.action} the same target.`;
  if (r.dry_run) s += ' Dry run: decided and audited, nothing sent.';
  return s;
}
