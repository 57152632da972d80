import type { ClusterHistory, HistorySeries } from '../state/cluster-history.js';
import type { WorkerRecord, WorkerRegistry } from '../state/workers.js';
import { sparkline } from './charts.js';
import { healthBanner, WORKER_STATE_TITLE, workerState, type ClusterHealth, type WorkerState } from './health.js';
import { age, html, rowsOr, type Html } from './html.js';
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

/** The sum over the window (NaN readings skipped). */
export function windowSum(s: HistorySeries | undefined): number {
  let n = 0;
  for (const v of s?.values ?? []) if (!Number.isNaN(v)) n += v;
  return n;
}

/**
 * How a worker's last hour reads: a worker that fails most of what it runs is unhealthy even
 * though its heartbeats arrive. `bad` from half its tasks failing (at least 3), `warn` from 10 %.
 */
export function failureTone(succeeded: number, failed: number): '' | 'warn' | 'bad' {
  const done = succeeded + failed;
  if (done === 0 || failed === 0) return '';
  if (failed >= 3 && failed / done >= 0.5) return 'bad';
  return failed / done >= 0.1 ? 'warn' : '';
}

export interface WorkersView {
  workers: WorkerRegistry;
  history: ClusterHistory;
  health: ClusterHealth;
  nowMs: number;
}

/** The workers table, up ones first, as the workers page and (its first `limit`) the overview show it. */
export function workersTable(ctx: ConsoleContext, v: WorkersView, limit = Infinity): Html {
  const { workers, history, health, nowMs } = v;
  const order: Record<WorkerState, number> = { up: 0, unknown: 1, down: 2 };
  const all = [...workers.all()]
    .map((w) => ({ w, state: workerState(workers, w, health, nowMs) }))
    .sort((a, b) => order[a.state] - order[b.state] || a.w.hostname.localeCompare(b.w.hostname));
  const shown = all.slice(0, limit);
  const row = ({ w, state }: { w: WorkerRecord; state: WorkerState }) => {
    const s = history.workerSeries(w.hostname);
    const succeeded = windowSum(s.succeeded);
    const failed = windowSum(s.failed);
    const tone = failureTone(succeeded, failed);
    const done = succeeded + failed;
    return html`<tr data-worker="${w.hostname}"${tone ? html` class="${tone}"` : ''}>
<td class="name"><a href="${workerHref(ctx, w.hostname)}" title="${w.swVersion ? `Celery ${w.swVersion}` : ''}">${w.hostname}</a></td>
<td class="status"><span class="state state-${state}" title="${WORKER_STATE_TITLE[state]}">${state}</span>${emptyPoolFlag(state === 'up', w.processes)}</td>
<td class="num processes">${w.processes ?? '?'}</td><td class="num active">${w.active ?? '?'}</td><td class="num processed">${w.processed ?? '?'}</td>
<td class="num succeeded">${succeeded}</td><td class="num failed${failed ? ' bad' : ''}">${failed}</td><td class="num retried">${windowSum(s.retried)}</td>
<td class="num failure-rate${tone ? ` ${tone}` : ''}">${done ? `${Math.round((failed / done) * 100)} %` : '–'}</td>
<td class="spark-cell">${sparkline(s.succeeded, 'ok', 'succeeded per minute', 6)}${sparkline(s.failed, 'bad', 'failed per minute', 6)}</td>
<td class="num load">${(w.loadavg ?? []).map(fixed).join(' ')}</td>
<td class="queues">${(w.queues ?? []).map((q, i) => html`${i ? ', ' : ''}<a href="${ctx.href('/ui/queues', { queue: q })}">${q}</a>`)}</td>
<td class="num">${age(w.lastHeartbeatAt ?? w.heartbeatBeforeRestartAt, nowMs)}</td></tr>`;
  };
  return html`<div class="scroll"><table id="workers" class="compact"><thead><tr><th>worker</th><th>status</th><th class="num">pool</th><th class="num">active</th><th class="num" title="tasks the worker processed since it started (its own count)">processed</th>
<th class="num" title="last hour">succeeded</th><th class="num" title="last hour">failed</th><th class="num" title="last hour">retried</th><th class="num" title="failed ÷ (succeeded + failed), last hour">fail rate</th>
<th title="succeeded (green) and failed (red) per minute, last hour">last hour</th><th class="num">load 1/5/15</th><th>queues</th><th class="num">heartbeat</th></tr></thead>
<tbody>${rowsOr(shown.map(row), 13, 'no worker seen yet: workers must run with -E (task events) to appear')}</tbody></table></div>
${all.length > shown.length ? html`<p><a href="${ctx.href('/ui/workers')}">all ${all.length} workers</a></p>` : ''}`;
}

/** Every worker the exporter knows, with the last hour's outcomes. Refreshes itself while "live" is ticked. */
export function workersPage(ctx: ConsoleContext, v: WorkersView): string {
  const { workers, health, nowMs } = v;
  const all = [...workers.all()];
  const up = workers.alive(nowMs);
  const unknown = all.filter((w) => workerState(workers, w, health, nowMs) === 'unknown').length;
  const body = html`<div class="summary"><span><strong>${up.length}</strong> up</span>${unknown ? html`<span><strong>${unknown}</strong> unknown</span>` : ''}<span><strong>${all.length - up.length - unknown}</strong> down</span>
<span><strong>${up.reduce((n, w) => n + (w.processes ?? 0), 0)}</strong> pool processes</span><span><strong>${up.reduce((n, w) => n + (w.active ?? 0), 0)}</strong> active tasks</span>
<label><input type="checkbox" id="live-toggle" checked> live</label></div>
<div data-live="5">${healthBanner(health, unknown, nowMs)}${workersTable(ctx, v)}</div>`;
  return layout(ctx, { title: 'Workers', section: 'workers', body });
}
