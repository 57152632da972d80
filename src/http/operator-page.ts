import type { Request, RequestHandler } from 'express';
import { roleAtLeast, type Auth } from '../auth/index.js';
import type { QueueSample } from '../metrics/celery-metrics.js';
import type { WorkerRegistry } from '../state/workers.js';

import { escapeHtml as esc } from '../html.js';

const STYLE = `body{font-family:system-ui,sans-serif;margin:1.5rem;max-width:75rem}table{border-collapse:collapse;margin-bottom:1.5rem}
td,th{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}th{background:#f3f3f3}
.down{color:#a00}.up{color:#070}form{display:inline-block;margin:.15rem .4rem .15rem 0}input{width:6rem}
#result{background:#f7f7f7;border:1px solid #ddd;padding:.5rem;white-space:pre-wrap;min-height:2rem}`;

// A little JS: forms post JSON to /api/v1/actions with the session's CSRF token and show the
// per-worker result. Without JS nothing is sent (no accidental GET side effects).
const SCRIPT = `document.addEventListener('submit', async (ev) => {
  const f = ev.target; if (!f.dataset.command) return; ev.preventDefault();
  const args = {}; for (const el of f.querySelectorAll('[data-arg]')) {
    if (el.type === 'checkbox') { args[el.dataset.arg] = el.checked; continue; }
    if (el.value === '') continue; args[el.dataset.arg] = el.dataset.type === 'number' ? Number(el.value) : el.value; }
  const body = { command: f.dataset.command, arguments: args, targets: { workers: [f.dataset.worker] }, confirm: f.dataset.confirm === '1' };
  const out = document.getElementById('result'); out.textContent = 'sending ' + body.command + ' to ' + f.dataset.worker + '...';
  const res = await fetch('/api/v1/actions', { method: 'POST', credentials: 'same-origin', headers: { 'content-type': 'application/json',
    'x-csrf-token': document.querySelector('meta[name=csrf-token]').content }, body: JSON.stringify(body) });
  const json = await res.json().catch(() => ({}));
  out.textContent = res.status + ' ' + JSON.stringify(json, null, 2);
  out.dataset.status = String(res.status); out.dataset.outcome = json.outcome || '';
});`;

function numberInput(arg: string, placeholder: string, value = ''): string {
  return `<input data-arg="${arg}" data-type="number" type="number" min="0" placeholder="${placeholder}" value="${value}" aria-label="${placeholder}">`;
}

function textInput(arg: string, placeholder: string): string {
  return `<input data-arg="${arg}" placeholder="${placeholder}" aria-label="${placeholder}">`;
}

function form(worker: string, command: string, label: string, inputs: string, confirm = false): string {
  return `<form data-command="${command}" data-worker="${esc(worker)}"${confirm ? ' data-confirm="1"' : ''}>${inputs}<button type="submit" name="${command}">${label}</button></form>`;
}

/**
 * The operator page: workers and queues at a glance, and forms for the actions the caller's role
 * allows (viewers see none). Server-rendered; every value is escaped.
 */
export function operatorPage(deps: { auth: Auth; workers: WorkerRegistry; queues: () => Promise<QueueSample[]> }): RequestHandler[] {
  return [
    deps.auth.requireRole('viewer'),
    (req: Request, res, next) => {
      deps
        .queues()
        .then((queues) => res.type('html').send(render(req, deps, queues)))
        .catch(next);
    },
  ];
}

function render(req: Request, deps: { auth: Auth; workers: WorkerRegistry }, queues: QueueSample[]): string {
  const principal = req.principal!;
  const canOperate = roleAtLeast(principal.role, 'operator');
  const isAdmin = roleAtLeast(principal.role, 'admin');
  const workers = [...deps.workers.all()].sort((a, b) => a.hostname.localeCompare(b.hostname));
  const rows = workers
    .map((w) => {
      const up = deps.workers.isAlive(w);
      const actions = canOperate && up
        ? [
            form(w.hostname, 'pool_grow', 'Grow', numberInput('n', 'n', '1'), true),
            form(w.hostname, 'pool_shrink', 'Shrink', numberInput('n', 'n', '1'), true),
            form(w.hostname, 'autoscale', 'Autoscale', numberInput('max', 'max') + numberInput('min', 'min')),
            form(w.hostname, 'add_consumer', 'Add consumer', textInput('queue', 'queue'), true),
            form(w.hostname, 'cancel_consumer', 'Cancel consumer', textInput('queue', 'queue'), true),
            form(w.hostname, 'rate_limit', 'Rate limit', textInput('task_name', 'task') + textInput('rate_limit', '10/m')),
            form(w.hostname, 'time_limit', 'Time limit', textInput('task_name', 'task') + numberInput('soft', 'soft s') + numberInput('hard', 'hard s')),
            form(w.hostname, 'revoke', 'Revoke', textInput('task_id', 'task id') + (isAdmin ? '<label><input data-arg="terminate" type="checkbox" style="width:auto"> terminate</label>' : '')),
            ...(isAdmin ? [form(w.hostname, 'pool_restart', 'Restart pool', ''), form(w.hostname, 'shutdown', 'Shut down', '')] : []),
          ].join('')
        : '';
      return `<tr data-worker="${esc(w.hostname)}"><td>${esc(w.hostname)}</td><td class="${up ? 'up' : 'down'}">${up ? 'up' : 'down'}</td>
<td class="processes">${esc(w.processes ?? '?')}</td><td>${esc(w.active ?? '?')}</td><td>${esc((w.queues ?? []).join(', '))}</td>${canOperate ? `<td>${actions}</td>` : ''}</tr>`;
    })
    .join('\n');
  const queueRows = queues
    .map((q) => `<tr><td>${esc(q.queue)}</td><td>${esc(q.length ?? '?')}</td><td>${esc(q.consumers ?? '-')}</td><td>${q.workers}</td><td>${q.processes}</td></tr>`)
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>celery-autopilot: operator</title>
<meta name="csrf-token" content="${esc(deps.auth.csrfToken(req))}"><style nonce="${esc(req.res?.locals.cspNonce)}">${STYLE}</style></head>
<body>
<div>Signed in as <strong>${esc(principal.name)}</strong> (${esc(principal.role)}) · <a href="/metrics">metrics</a>
<form method="post" action="/logout" style="display:inline"><input type="hidden" name="_csrf" value="${esc(deps.auth.csrfToken(req))}"><button>Log out</button></form></div>
<h1>Workers</h1>
<table id="workers"><thead><tr><th>worker</th><th>state</th><th>pool processes</th><th>active tasks</th><th>queues</th>${canOperate ? '<th>actions</th>' : ''}</tr></thead>
<tbody>${rows || '<tr><td colspan="6">no worker seen yet</td></tr>'}</tbody></table>
<h1>Queues</h1>
<table id="queues"><thead><tr><th>queue</th><th>depth</th><th>consumers</th><th>workers</th><th>processes</th></tr></thead>
<tbody>${queueRows || '<tr><td colspan="5">no queue known yet</td></tr>'}</tbody></table>
${canOperate ? '<h2>Result</h2><pre id="result" aria-live="polite"></pre>' : ''}
${canOperate ? `<script nonce="${esc(req.res?.locals.cspNonce)}">${SCRIPT}</script>` : ''}
</body></html>`;
}
