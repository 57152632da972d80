import type { ControlClient, WorkerResult } from '../control/client.js';
import type { CommandName } from '../control/commands.js';
import { registeredInfo } from '../control/confirmations.js';
import type { WorkerRecord } from '../state/workers.js';
import { commandForm, roleFor, taskTypeActions, workerActions } from './actions.js';
import { age, html, isoTime, json, type Html, rowsOr } from './html.js';
import { layout, type ConsoleContext } from './layout.js';
import { emptyPoolFlag } from './workers.js';
import { liveProcesses } from '../control/shrink.js';
import { taskHref, taskRows, type InspectedTask } from './worker-tasks.js';

/** The read-only inspections a worker page shows, asked in parallel (each a viewer command). */
const INSPECTIONS = [
  ['stats', {}],
  ['active_queues', {}],
  ['registered', { taskinfoitems: ['rate_limit', 'time_limit', 'soft_time_limit'] }],
  ['active', {}],
  ['reserved', {}],
  ['scheduled', {}],
  ['revoked', {}],
  // Celery censors settings whose names look secret before replying (commands.ts).
  ['conf', {}],
] as const satisfies ReadonlyArray<readonly [CommandName, Record<string, unknown>]>;

export type Inspection = Partial<Record<(typeof INSPECTIONS)[number][0], WorkerResult>>;

/** One round of inspections of one worker; each command's result as the control client reports it. */
export async function inspectWorker(control: ControlClient, worker: string): Promise<Inspection> {
  const results = await Promise.all(INSPECTIONS.map(([method, args]) => control.run(method, args, { workers: [worker] })));
  return Object.fromEntries(INSPECTIONS.map(([method], i) => [method, results[i]!.results[0]])) as Inspection;
}

const record = (v: unknown): Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/** A worker's own answer, or why there is none, for a section that could not be read. */
function unanswered(r: WorkerResult | undefined): Html | undefined {
  if (r?.status === 'ok') return undefined;
  return html`<p class="muted">${r ? (r.status === 'no_reply' ? 'no reply within the timeout' : `${r.status}: ${r.message ?? ''}`) : 'not asked'}</p>`;
}

function poolSection(stats: Record<string, unknown>): Html {
  const pool = record(stats.pool);
  const autoscaler = record(stats.autoscaler);
  const processes = list(pool.processes);
  return html`<dl class="kv" id="pool">
<dt>processes</dt><dd class="processes">${processes.length}</dd><dt>pids</dt><dd class="mono">${processes.join(' ')}</dd>
<dt>max concurrency</dt><dd>${pool['max-concurrency'] ?? ''}</dd><dt>max tasks per child</dt><dd>${pool['max-tasks-per-child'] ?? ''}</dd>
<dt>timeouts (soft, hard)</dt><dd>${list(pool.timeouts).join(', ')}</dd><dt>prefetch count</dt><dd>${stats.prefetch_count ?? ''}</dd>
${Object.keys(autoscaler).length ? html`<dt>autoscaler</dt><dd>min ${autoscaler.min ?? '?'}, max ${autoscaler.max ?? '?'}, ${autoscaler.current ?? '?'} now</dd>` : ''}
<dt>pid</dt><dd>${stats.pid ?? ''}</dd><dt>uptime</dt><dd>${stats.uptime ?? ''} s</dd><dt>logical clock</dt><dd>${stats.clock ?? ''}</dd>
</dl>`;
}

/** Flower's Config tab: the settings that differ from Celery's defaults, as the worker reports them. */
function confSection(reply: unknown): Html {
  const entries = Object.entries(record(reply)).sort(([a], [b]) => a.localeCompare(b));
  if (!entries.length) return html`<p class="muted">no setting differs from the defaults</p>`;
  return html`<table id="conf"><thead><tr><th>setting</th><th>value</th></tr></thead><tbody>${entries.map(([k, v]) => html`<tr><td class="mono">${k}</td><td class="mono">${typeof v === 'string' ? v : JSON.stringify(v)}</td></tr>`)}</tbody></table>`;
}

/** getrusage(2) names, as Flower's System tab labels them. */
const RUSAGE: ReadonlyArray<readonly [string, string]> = [
  ['utime', 'user CPU (s)'],
  ['stime', 'system CPU (s)'],
  ['maxrss', 'max resident set (kB)'],
  ['minflt', 'page faults without I/O'],
  ['majflt', 'page faults with I/O'],
  ['inblock', 'block inputs'],
  ['oublock', 'block outputs'],
  ['nvcsw', 'voluntary context switches'],
  ['nivcsw', 'involuntary context switches'],
  ['nsignals', 'signals received'],
];

/** Flower's System tab: the worker process's resource usage (stats.rusage) and its broker. */
function systemSection(stats: Record<string, unknown>): Html {
  const rusage = record(stats.rusage);
  const broker = record(stats.broker);
  return html`<dl class="kv" id="system">${RUSAGE.filter(([k]) => rusage[k] !== undefined).map(([k, label]) => html`<dt>${label}</dt><dd class="num rusage-${k}">${typeof rusage[k] === 'number' && !Number.isInteger(rusage[k]) ? (rusage[k] as number).toFixed(3) : String(rusage[k])}</dd>`)}
${broker.transport !== undefined ? html`<dt>broker</dt><dd>${String(broker.transport)}://${String(broker.hostname ?? '')}:${String(broker.port ?? '')}${broker.virtual_host !== undefined ? `/${String(broker.virtual_host)}` : ''}</dd>` : ''}</dl>`;
}

/** Failed and retried tasks per task name on one worker, from the kept tasks. */
export type TaskOutcomes = ReadonlyMap<string, { failed: number; retried: number }>;

function totalsSection(stats: Record<string, unknown>): Html {
  const totals = Object.entries(record(stats.total)).sort((a, b) => Number(b[1]) - Number(a[1]));
  if (!totals.length) return html`<p class="muted">no task run yet</p>`;
  return html`<table id="totals"><thead><tr><th>task</th><th class="num">processed</th></tr></thead><tbody>${totals.map(([t, n]) => html`<tr><td>${t}</td><td class="num">${n}</td></tr>`)}</tbody></table>`;
}

function queuesSection(ctx: ConsoleContext, worker: string, queues: unknown[]): Html {
  const rows = queues.map((q) => {
    const r = record(q);
    const name = String(r.name ?? '');
    return html`<tr data-queue="${name}"><td><a href="${ctx.href('/ui/queues', { queue: name })}">${name}</a></td><td>${typeof r.exchange === 'object' ? record(r.exchange).name : r.exchange}</td>
<td>${r.exchange_type ?? record(r.exchange).type ?? ''}</td><td>${r.routing_key ?? ''}</td><td>${r.durable === undefined ? '' : String(r.durable)}</td>
<td>${commandForm(ctx, worker, { command: 'cancel_consumer', label: 'Cancel consumer', args: { queue: name }, confirmEffect: true })}</td></tr>`;
  });
  return html`<table id="active-queues"><thead><tr><th>queue</th><th>exchange</th><th>type</th><th>routing key</th><th>durable</th><th></th></tr></thead>
<tbody>${rowsOr(rows, 6, 'consumes no queue')}</tbody></table>`;
}

function registeredSection(ctx: ConsoleContext, worker: string, reply: unknown, outcomes: TaskOutcomes): Html {
  const names = list(reply)
    .filter((e): e is string => typeof e === 'string')
    .map((e) => (e.includes(' [') ? e.slice(0, e.indexOf(' [')) : e));
  const rows = names.sort().map((name) => {
    const info = registeredInfo(reply, name) ?? new Map<string, string>();
    const shown = (k: string) => info.get(k) ?? html`<span class="muted">none</span>`;
    const forms = taskTypeActions(name).map((spec) => commandForm(ctx, worker, spec));
    const counts = outcomes.get(name);
    const count = (n: number | undefined, state: string) =>
      n
        ? html`<a href="${ctx.href('/ui/tasks', { taskname: name, workername: worker, state })}">${n}</a>`
        : html`<span class="muted">0</span>`;
    return html`<tr data-task="${name}"><td>${name}</td><td class="num failed">${count(counts?.failed, 'FAILURE')}</td><td class="num retried">${count(counts?.retried, 'RETRY')}</td><td class="rate-limit">${shown('rate_limit')}</td><td class="soft-time-limit">${shown('soft_time_limit')}</td><td class="time-limit">${shown('time_limit')}</td>
${ctx.can(roleFor('rate_limit')) ? html`<td>${forms}</td>` : ''}</tr>`;
  });
  return html`<table id="registered"><thead><tr><th>task</th><th class="num" title="kept tasks of this name that failed on this worker">failed</th><th class="num" title="kept tasks of this name retried on this worker">retried</th><th>rate limit</th><th>soft time limit</th><th>time limit</th>${ctx.can(roleFor('rate_limit')) ? html`<th>change</th>` : ''}</tr></thead>
<tbody>${rowsOr(rows, 7, 'no task registered')}</tbody></table>`;
}

function section(title: string, id: string, r: WorkerResult | undefined, content: () => Html): Html {
  return html`<section id="${id}-section"><h2>${title}</h2>${unanswered(r) ?? content()}</section>`;
}

/**
 * One worker: what it says about itself (pool, totals, queues, registered tasks with their
 * limits, tasks active, reserved, scheduled and revoked) and every action the caller's role
 * allows, each sent to this worker only.
 */
export function workerPage(
  ctx: ConsoleContext,
  o: {
    name: string;
    record: WorkerRecord | undefined;
    alive: boolean;
    inspection: Inspection | undefined;
    error?: string;
    nowMs: number;
    outcomes?: TaskOutcomes;
  },
): string {
  const { name, record: w, inspection: i } = o;
  const stats = record(i?.stats?.reply);
  const taskList = (key: 'active' | 'reserved' | 'scheduled', label: string) =>
    section(label, key, i?.[key], () => taskRows(ctx, key, list(i?.[key]?.reply) as InspectedTask[]));
  const revoked = list(i?.revoked?.reply);
  const forms = o.alive ? workerActions(name).map((spec) => commandForm(ctx, name, spec)) : [];
  const body = html`<div class="summary" id="worker-summary" data-worker="${name}">
<span class="state state-${o.alive ? 'up' : 'down'}">${o.alive ? 'up' : 'down'}</span>${emptyPoolFlag(o.alive, i?.stats?.status === 'ok' ? (liveProcesses(i.stats.reply) ?? w?.processes) : w?.processes)}
<span>last heartbeat <strong>${age(w?.lastHeartbeatAt, o.nowMs)}</strong> ago</span><span>active <strong>${w?.active ?? '?'}</strong></span>
<span>processed <strong>${w?.processed ?? '?'}</strong></span><span>load <strong>${(w?.loadavg ?? []).join(' ')}</strong></span><span class="muted">${w?.swVersion ?? ''}</span>
<span class="muted">inspected ${isoTime(o.nowMs)}</span></div>
${o.error ? html`<p class="error" role="alert">${o.error}</p>` : ''}
${!o.alive ? html`<p class="muted">This worker is not alive (no heartbeat within its window): nothing was asked and no action is offered.</p>` : ''}
${
  i
    ? html`<div class="grid">${section('Pool', 'pool', i.stats, () => poolSection(stats))}${section('Tasks processed', 'totals', i.stats, () => totalsSection(stats))}</div>
${section('Queues', 'queues', i.active_queues, () => queuesSection(ctx, name, list(i.active_queues?.reply)))}`
    : ''
}
${forms.some((f) => f.text !== '') ? html`<section class="actions" id="actions"><h2>Actions</h2>${forms}</section>` : ''}
${
  i
    ? html`${section('Registered tasks', 'registered', i.registered, () => registeredSection(ctx, name, i.registered?.reply, o.outcomes ?? new Map()))}
${taskList('active', 'Active')}${taskList('reserved', 'Reserved')}${taskList('scheduled', 'Scheduled')}
${section('Revoked', 'revoked', i.revoked, () => html`<p class="mono" id="revoked">${revoked.length ? revoked.map((id, n) => html`${n ? ' ' : ''}<a href="${taskHref(ctx, String(id))}">${String(id)}</a>`) : html`<span class="muted">none</span>`}</p>`)}
<div class="grid">${section('System', 'system', i.stats, () => systemSection(stats))}${section('Config', 'conf', i.conf, () => confSection(i.conf?.reply))}</div>
<details><summary>Raw stats</summary><pre>${json(stats)}</pre></details>`
    : ''
}`;
  return layout(ctx, { title: name, section: 'workers', body });
}
