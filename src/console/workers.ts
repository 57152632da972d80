import type { WorkerRecord, WorkerRegistry } from '../state/workers.js';
import { age, html, rowsOr } from './html.js';
import { layout, type ConsoleContext } from './layout.js';

/** Links to a worker's page; names are encoded so "celery@host/x" or hostile names stay one segment. */
export const workerHref = (ctx: ConsoleContext, name: string): string => ctx.href(`/ui/workers/${encodeURIComponent(name)}`);

/**
 * A worker UP with no pool process consumes messages and runs none (e.g. after a shrink that
 * removed every process): flagged wherever its state is shown, and counted in celery_workers_pool_empty.
 */
export const emptyPoolFlag = (alive: boolean, processes: number | undefined) =>
  alive && processes === 0
    ? html` <span class="state state-pool-empty" title="up, but with 0 pool processes: it runs no task until its pool grows">pool empty</span>`
    : html``;

const fixed = (n: number | undefined) => (n === undefined ? '' : n.toFixed(2));

/**
 * Every worker the exporter knows, up ones first: state, pool, active/processed, load and the
 * queues it consumes. Refreshes itself while "live" is ticked.
 */
export function workersPage(ctx: ConsoleContext, registry: WorkerRegistry, nowMs: number): string {
  const workers = [...registry.all()].sort(
    (a, b) => Number(registry.isAlive(b, nowMs)) - Number(registry.isAlive(a, nowMs)) || a.hostname.localeCompare(b.hostname),
  );
  const up = workers.filter((w) => registry.isAlive(w, nowMs));
  const row = (w: WorkerRecord) => {
    const alive = registry.isAlive(w, nowMs);
    return html`<tr data-worker="${w.hostname}">
<td><a href="${workerHref(ctx, w.hostname)}">${w.hostname}</a></td>
<td class="status"><span class="state state-${alive ? 'up' : 'down'}">${alive ? 'up' : 'down'}</span>${emptyPoolFlag(alive, w.processes)}</td>
<td class="num processes">${w.processes ?? '?'}</td><td class="num active">${w.active ?? '?'}</td><td class="num processed">${w.processed ?? '?'}</td>
<td class="num load">${(w.loadavg ?? []).map(fixed).join(' ')}</td>
<td class="queues">${(w.queues ?? []).map((q, i) => html`${i ? ', ' : ''}<a href="${ctx.href('/ui/queues', { queue: q })}">${q}</a>`)}</td>
<td class="num">${age(w.lastHeartbeatAt ?? w.heartbeatBeforeRestartAt, nowMs)}</td><td class="muted">${w.swVersion ?? ''}</td></tr>`;
  };
  const empty = up.filter((w) => w.processes === 0).length;
  const body = html`<div class="summary"><span><strong>${up.length}</strong> up</span>${empty ? html`<span class="error"><strong>${empty}</strong> up with an empty pool</span>` : ''}<span><strong>${workers.length - up.length}</strong> down</span>
<span><strong>${up.reduce((n, w) => n + (w.processes ?? 0), 0)}</strong> pool processes</span><span><strong>${up.reduce((n, w) => n + (w.active ?? 0), 0)}</strong> active tasks</span>
<label><input type="checkbox" id="live-toggle" checked> live</label></div>
<table id="workers"><thead><tr><th>worker</th><th>status</th><th class="num">pool</th><th class="num">active</th><th class="num">processed</th>
<th class="num">load 1/5/15</th><th>queues</th><th class="num">heartbeat</th><th>software</th></tr></thead>
<tbody data-live="5">${rowsOr(workers.map(row), 9, 'no worker seen yet: workers must run with -E (task events) to appear')}</tbody></table>`;
  return layout(ctx, { title: 'Workers', section: 'workers', body });
}
