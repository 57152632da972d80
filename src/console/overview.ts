import type { AuditRecord } from '../audit/audit-log.js';
import type { TaskStore } from '../tasks/task-store.js';
import type { WorkerRegistry } from '../state/workers.js';
import type { ClusterHistory } from '../state/cluster-history.js';
import { lineChart, recentSum, shortNumber, type Line } from './charts.js';
import { healthBanner, workerState, type ClusterHealth } from './health.js';
import { age, html, rowsOr, type Html } from './html.js';
import { layout, type ConsoleContext } from './layout.js';
import { workersTable } from './workers.js';

export type { ClusterHealth } from './health.js';

export interface OverviewData {
  health: ClusterHealth;
  workers: WorkerRegistry;
  history: ClusterHistory;
  /** Per queue: messages waiting in the broker (null: not read) and what workers hold. */
  queues: ReadonlyArray<{ queue: string; depth: number | null; reserved: number; running: number }>;
  store: TaskStore | undefined;
  decisions: AuditRecord[];
  killSwitch: boolean | undefined;
  nowMs: number;
}

/** Increases per 10 s step, shown per minute. */
const PER_MINUTE = 6;
const TONES = ['s0', 's1', 's2', 's3', 's4', 's5'];
/** Workers the overview lists (up first); the workers page has them all. */
const OVERVIEW_WORKERS = 25;

const tile = (label: string, value: Html | string | number, tone = '', note: Html | string = '') =>
  html`<div class="tile ${tone}"><span class="tile-value">${value}</span><span class="tile-label">${label}</span>${note ? html`<span class="tile-note">${note}</span>` : ''}</div>`;

/** Failures of the last hour by task name and exception, most first, from the task store. */
function topFailures(ctx: ConsoleContext, store: TaskStore | undefined, nowMs: number): Html {
  if (!store) return html`<p class="muted">The task store is off (tasks.enabled: false): no failure list.</p>`;
  const since = nowMs / 1000 - 3600;
  const groups = new Map<string, { name: string; exception: string; count: number; last: number }>();
  const failed = store.query({ state: 'FAILURE', limit: 2000, sortBy: { field: 'timestamp', descending: true } }).tasks;
  for (const t of failed) {
    if ((t.failed ?? t.timestamp ?? 0) < since) break;
    const exception = (t.exception ?? '').replace(/\(.*$/s, '') || 'unknown';
    const key = `${t.name}\u0000${exception}`;
    const g = groups.get(key) ?? { name: t.name ?? '?', exception, count: 0, last: t.failed ?? 0 };
    g.count++;
    groups.set(key, g);
  }
  const rows = [...groups.values()]
    .sort((a, b) => b.count - a.count)
    .slice(0, 8)
    .map(
      (
        g,
      ) => html`<tr><td><a href="${ctx.href('/ui/tasks', { state: 'FAILURE', name: g.name })}">${g.name}</a></td><td class="mono">${g.exception}</td>
<td class="num">${g.count}</td><td class="num">${age(g.last * 1000, nowMs)} ago</td></tr>`,
    );
  return html`<table id="top-failures"><thead><tr><th>task</th><th>exception</th><th class="num">failures</th><th class="num">last</th></tr></thead>
<tbody>${rowsOr(rows, 4, 'no failure in the last hour')}</tbody></table>`;
}

function decisionsList(ctx: ConsoleContext, decisions: AuditRecord[], killSwitch: boolean | undefined): Html {
  if (killSwitch === undefined) return html`<p class="muted">Remediation is off (remediation.enabled: false).</p>`;
  const rows = decisions.map(
    (r) =>
      html`<tr><td class="mono nowrap">${r.time}</td><td>${r.rule ?? ''}</td><td>${String(r.command ?? r.action ?? '')}</td><td><span class="outcome outcome-${String(r.outcome ?? '')}">${r.outcome ?? ''}</span> ${r.reason ?? ''}</td></tr>`,
  );
  return html`${killSwitch ? html`<p class="banner warn">Kill switch engaged: remediation decides but sends nothing.</p>` : ''}
<table id="recent-decisions"><thead><tr><th>time (UTC)</th><th>rule</th><th>action</th><th>outcome</th></tr></thead><tbody>${rowsOr(rows, 4, 'no decision yet')}</tbody></table>
<p><a href="${ctx.href('/ui/remediation')}">all decisions and the audit log</a></p>`;
}

/**
 * The first page on-call opens: is the broker there, are workers up and doing work, is anything
 * piling up or failing, and what did remediation do. Charts come from the in-memory history
 * (one reading per 10 s, last hour); the page refreshes itself while "live" is ticked.
 */
export function overviewPage(ctx: ConsoleContext, d: OverviewData): string {
  const { health, workers, history, nowMs } = d;
  const all = [...workers.all()];
  const states = all.map((w) => workerState(workers, w, health, nowMs));
  const up = states.filter((s) => s === 'up').length;
  const unknown = states.filter((s) => s === 'unknown').length;
  const alive = workers.alive(nowMs);
  const waiting = d.queues.reduce((n, q) => n + (q.depth ?? 0), 0);
  const reserved = d.queues.reduce((n, q) => n + q.reserved, 0);
  const running = alive.reduce((n, w) => n + (w.active ?? 0), 0);
  const g = (key: string) => history.series(key);
  // The tiles count the last minute (six readings), steadier than one 10 s step × 6.
  const failedNow = recentSum(g('failed'), 6);
  const eventAge = d.health.lastEventAtMs > 0 ? age(d.health.lastEventAtMs, nowMs) : undefined;
  const tiles = html`<div class="tiles" id="tiles">
${tile('workers up', html`${up}<small> / ${all.length}</small>`, up === 0 && all.length > 0 ? 'bad' : unknown > 0 ? 'warn' : 'ok', unknown ? `${unknown} unknown` : '')}
${tile(
  'pool processes',
  alive.reduce((n, w) => n + (w.processes ?? 0), 0),
)}
${tile('running', running)}
${tile('waiting in queues', waiting, waiting > 0 && up === 0 ? 'bad' : '')}
${tile('reserved by workers', reserved, '', 'prefetched, not started')}
${tile('succeeded, last min', shortNumber(recentSum(g('succeeded'), 6)))}
${tile('failed, last min', shortNumber(failedNow), failedNow > 0 ? 'bad' : '')}
${tile('last event', eventAge ? `${eventAge} ago` : 'none yet', eventAge === undefined && health.connected ? 'warn' : '', d.health.eventsDropped ? `${d.health.eventsDropped} dropped` : '')}
</div>`;
  const queueLines: Line[] = [...d.queues]
    .sort((a, b) => (b.depth ?? 0) + b.reserved - ((a.depth ?? 0) + a.reserved) || a.queue.localeCompare(b.queue))
    .slice(0, TONES.length)
    .map((q, i) => ({ label: q.queue, series: history.queueSeries(q.queue).depth, tone: TONES[i]! }));
  const charts = html`<div class="charts">
${lineChart({
  id: 'chart-tasks',
  title: 'Tasks',
  unit: 'per minute (legend: the last minute)',
  lines: [
    { label: 'succeeded', series: g('succeeded'), scale: PER_MINUTE, tone: 'ok', now: recentSum(g('succeeded'), 6) },
    { label: 'failed', series: g('failed'), scale: PER_MINUTE, tone: 'bad', now: recentSum(g('failed'), 6) },
    { label: 'retried', series: g('retried'), scale: PER_MINUTE, tone: 'warn', now: recentSum(g('retried'), 6) },
  ],
})}
${lineChart({ id: 'chart-queues', title: 'Messages waiting', unit: 'per queue', lines: queueLines, empty: 'no queue known yet' })}
${lineChart({
  id: 'chart-workers',
  title: 'Workers',
  unit: 'count',
  lines: [
    { label: 'workers up', series: g('workers_up'), tone: 'ok' },
    { label: 'pool processes', series: g('processes'), tone: 's1' },
    { label: 'broker up (1/0)', series: g('broker_up'), tone: 's4' },
  ],
})}
</div>`;
  const body = html`<div class="summary"><span class="muted">Updated ${new Date(nowMs).toISOString().slice(11, 19)} UTC</span><label><input type="checkbox" id="live-toggle" checked> live</label></div>
<div data-live="10">
${healthBanner(health, unknown, nowMs)}
${tiles}
${charts}
<h2>Workers</h2>
${workersTable(ctx, { workers, history, health, nowMs }, OVERVIEW_WORKERS)}
<div class="grid"><section><h2>Failing in the last hour</h2>${topFailures(ctx, d.store, nowMs)}</section>
<section><h2>Latest remediation decisions</h2>${decisionsList(ctx, d.decisions, d.killSwitch)}</section></div>
</div>`;
  return layout(ctx, { title: 'Overview', section: 'overview', body });
}
