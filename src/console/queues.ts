import type { ManagementQueue } from '../broker-api/rabbitmq-management.js';
import type { QueueSample } from '../metrics/celery-metrics.js';
import type { WorkerRegistry } from '../state/workers.js';
import type { ClusterHistory } from '../state/cluster-history.js';
import { sparkline } from './charts.js';
import { html, rowsOr, type Html } from './html.js';
import { layout, type ConsoleContext } from './layout.js';
import { workerHref } from './workers.js';

/**
 * Purge, on one queue's page, for admins: the queue's name must be typed, then a dry run's count
 * is confirmed before anything is removed (console.js twoStep; POST /api/v1/queues/<name>/purge).
 */
function purgeForm(ctx: ConsoleContext, queue: string): Html {
  if (!ctx.can('admin')) return html``;
  return html`<section class="actions" id="purge"><h2>Purge</h2><form class="action" data-post="/api/v1/queues/${encodeURIComponent(queue)}/purge" data-two-step="1" data-confirm-name="${queue}" data-noun="messages removed for good" data-label="Purge ${queue}">
<input data-arg="confirm_name" class="wide" aria-label="type the queue name to confirm" placeholder="type ${queue} to confirm"><button type="submit" name="purge" class="danger">Purge queue</button></form>
<p class="muted">Removes every ready message (on Redis every priority list); messages a worker holds unacknowledged stay. Nothing can bring them back.</p></section>`;
}

/**
 * Flower's broker page: every queue a worker consumes (or the config lists), its depth as the
 * broker reports it, its consumers, and which live workers serve it. `?queue=` narrows to one.
 */
export function queuesPage(
  ctx: ConsoleContext,
  samples: QueueSample[],
  registry: WorkerRegistry,
  o: {
    only: string | undefined;
    nowMs: number;
    /** Per queue, tasks workers hold: received but not started (prefetched), and running. */
    open: ReadonlyMap<string, { reserved: number; running: number }>;
    history: ClusterHistory;
    management?: { queues: ManagementQueue[] } | { error: string };
  },
): string {
  const { only, nowMs } = o;
  const managed = o.management && 'queues' in o.management ? new Map(o.management.queues.map((q) => [q.name, q])) : undefined;
  const consumers = new Map<string, string[]>();
  for (const w of registry.alive(nowMs)) for (const q of w.queues ?? []) consumers.set(q, [...(consumers.get(q) ?? []), w.hostname]);
  const shown = samples
    .filter((q) => only === undefined || q.queue === only)
    .sort((a, b) => (b.length ?? -1) - (a.length ?? -1) || a.queue.localeCompare(b.queue));
  const backlog = shown.reduce((n, q) => n + (q.length ?? 0), 0);
  const held = (q: string) => o.open.get(q) ?? { reserved: 0, running: 0 };
  const reserved = shown.reduce((n, q) => n + held(q.queue).reserved, 0);
  const running = shown.reduce((n, q) => n + held(q.queue).running, 0);
  const rows = shown.map(
    (q) => html`<tr data-queue="${q.queue}"><td><a href="${ctx.href('/ui/queues', { queue: q.queue })}">${q.queue}</a></td>
<td class="num depth">${q.length ?? html`<span class="muted" title="the broker did not answer">?</span>`}</td>
<td class="num reserved">${held(q.queue).reserved}</td><td class="num running">${held(q.queue).running}</td>
<td class="spark-cell">${sparkline(o.history.queueSeries(q.queue).depth, 's0', 'messages waiting')}</td>
${managed ? html`<td class="num ready">${managed.get(q.queue)?.messages_ready ?? '?'}</td><td class="num unacked">${managed.get(q.queue)?.messages_unacknowledged ?? '?'}</td>` : ''}
<td class="num">${managed?.get(q.queue)?.consumers ?? q.consumers ?? '-'}</td>
<td class="num">${q.workers}</td><td class="num">${q.processes}</td>
<td>${(consumers.get(q.queue) ?? []).sort().map((w, i) => html`${i ? ', ' : ''}<a href="${workerHref(ctx, w)}">${w}</a>`)}</td></tr>`,
  );
  const purge = only !== undefined && shown.length === 1 ? purgeForm(ctx, only) : html``;
  const body = html`<div class="summary" id="queues-summary"><span><strong>${shown.length}</strong> queues</span><span><strong>${backlog}</strong> messages waiting</span>
<span><strong>${reserved}</strong> reserved by workers (prefetched, not started)</span><span><strong>${running}</strong> running</span>
${only !== undefined ? html`<a href="${ctx.href('/ui/queues')}">all queues</a>` : ''}<label><input type="checkbox" id="live-toggle" checked> live</label></div>
<div class="scroll"><table id="queues" class="compact"><thead><tr><th>queue</th><th class="num" title="waiting in the broker">messages</th><th class="num" title="received by a worker, not started yet (prefetched, unacknowledged)">reserved</th><th class="num">running</th><th title="messages waiting, last hour">last hour</th>${managed ? html`<th class="num">ready</th><th class="num">unacked</th>` : ''}<th class="num">consumers</th><th class="num">workers</th><th class="num">processes</th><th>served by</th></tr></thead>
<tbody data-live="5">${rowsOr(rows, managed ? 11 : 9, only !== undefined ? 'no such queue known' : 'no queue known yet')}</tbody></table></div>
${purge}
<p class="muted">${managed ? 'Ready and unacknowledged messages and consumers from the RabbitMQ management API (broker_api); messages is' : 'Messages is'} the depth the exporter reports (RabbitMQ: a passive declare, ready messages only; Redis: the list and its priority lists). Reserved and running come from task events: messages a worker has taken (prefetch) are no longer waiting in the broker.</p>
${o.management && 'error' in o.management ? html`<p class="error" role="alert">${o.management.error}</p>` : ''}`;
  return layout(ctx, { title: 'Queues', section: 'queues', body });
}
