import { validateQueueName, CommandValidationError } from '../celery/validators.js';
import type { Alert } from './alertmanager.js';
import { checkTemplate, isTemplated, render, TemplateError } from './template.js';

/** What the purge_queue checks read of a rule (structural, so rules.ts can call them without a cycle). */
interface PurgeRuleShape {
  readonly action: string;
  readonly on_resolved?: { readonly action: string } | undefined;
  readonly target: { readonly queue?: string | undefined; readonly allow?: unknown };
}

/**
 * purge_queue at load: it names its queue in target.queue (a name or a template), and nothing
 * else uses target.queue. Never on resolve: emptying a queue because an alert stopped firing is
 * not a remediation anyone means.
 */
export function checkPurgeRule(rule: PurgeRuleShape, where: string, problems: string[]): void {
  const purges = rule.action === 'purge_queue';
  if (rule.on_resolved?.action === 'purge_queue') problems.push(`${where}: purge_queue cannot be an on_resolved step`);
  const queue = rule.target.queue;
  if (!purges) {
    if (queue !== undefined) problems.push(`${where}: target.queue is for purge_queue`);
    return;
  }
  if (rule.on_resolved) problems.push(`${where}: a purge_queue rule has no on_resolved step`);
  if (queue === undefined) problems.push(`${where}: purge_queue needs target.queue (a queue name or "{{ labels.queue_name }}")`);
  if (rule.target.allow !== undefined) problems.push(`${where}: target.allow names workers; a purge_queue rule names its queue`);
  if (queue === undefined) return;
  try {
    if (isTemplated(queue)) checkTemplate(queue);
    else validateQueueName(queue, 'target.queue');
  } catch (e) {
    if (!(e instanceof TemplateError) && !(e instanceof CommandValidationError)) throw e;
    problems.push(`${where}: ${e instanceof TemplateError ? `target.queue: ${e.message}` : e.message}`);
  }
}

/**
 * The queue a purge_queue decision empties: target.queue rendered from the alert and checked as
 * a queue name, since a label is only as trustworthy as whoever wrote the series.
 */
export function resolvePurgeQueue(template: string | undefined, alert: Alert): { queue: string } | { error: string } {
  if (template === undefined) return { error: 'purge_queue needs target.queue' };
  try {
    return { queue: validateQueueName(String(render(template, alert)), 'target.queue') };
  } catch (e) {
    if (!(e instanceof TemplateError) && !(e instanceof CommandValidationError)) throw e;
    return { error: e instanceof TemplateError ? `target.queue: ${e.message}` : e.message };
  }
}
