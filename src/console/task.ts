import { postForm, roleFor } from './actions.js';
import type { TaskHistory } from '../tasks/task-history.js';
import { html, type Html } from './html.js';
import { layout, type ConsoleContext } from './layout.js';
import { attemptsOf, timeline } from './task-timeline.js';
import { revokeForms, taskHref } from './worker-tasks.js';
import { workerHref } from './workers.js';

/** States after which there is nothing left to stop. */
const FINAL = new Set(['SUCCESS', 'FAILURE', 'REVOKED', 'REJECTED']);

const link = (ctx: ConsoleContext, id: string | null) =>
  id ? html`<a class="mono" href="${taskHref(ctx, id)}">${id}</a>` : html`<span class="muted">none</span>`;

/** Celery re-sends a retry from inside the task, so the retry names the task as its own parent (and child). */
const family = (ctx: ConsoleContext, t: Readonly<TaskHistory>, id: string | null, self: string) =>
  id === t.uuid ? html`<span class="muted">${self}</span>` : link(ctx, id);

/** The exception and traceback: the task's own, or (after a retry that later succeeded) the retried attempt's, folded. */
function failure(t: Readonly<TaskHistory>): Html {
  if (t.exception === null && t.traceback === null) return html``;
  const own = attemptsOf(t).at(-1)!.holdsException;
  if (own)
    return html`${t.exception !== null ? html`<h2>exception</h2><pre id="task-exception">${t.exception}</pre>` : ''}${t.traceback !== null ? html`<h2>traceback</h2><pre id="task-traceback">${t.traceback}</pre>` : ''}`;
  return html`<details id="retry-failure"><summary>The retried attempt raised <span class="mono">${t.exception ?? ''}</span></summary><pre>${t.traceback ?? ''}</pre></details>`;
}

/** Revoke and terminate (the control layer's roles) and abort (AbortableTask, through the result backend, when there is one). */
function actions(ctx: ConsoleContext, t: Readonly<TaskHistory>, abortable: boolean): Html {
  if (FINAL.has(t.state) || !ctx.can(roleFor('revoke'))) return html``;
  const abort = !abortable
    ? html``
    : postForm(ctx, 'operator', `/api/task/abort/${encodeURIComponent(t.uuid)}`, 'Abort', {
        name: 'abort',
        ask: `Abort task ${t.uuid}? It stops at its next is_aborted() check.`,
      });
  return html`<section class="actions" id="actions"><h2>Actions</h2>${revokeForms(ctx, t.uuid)}${abort}</section>`;
}

/**
 * One task: what its events said (name, routing, worker, retries, eta/expires), its payload for
 * roles allowed to see it, exception and traceback, the state timeline, its parent, root and
 * children, and revoke / terminate / abort while it can still be stopped.
 */
export function taskPage(
  ctx: ConsoleContext,
  t: Readonly<TaskHistory>,
  children: string[],
  o: { seesPayload: boolean; abortable: boolean },
): string {
  const { seesPayload } = o;
  const others = children.filter((c) => c !== t.uuid);
  const pre = (id: string, label: string, value: string | null) => html`<h2>${label}</h2><pre id="${id}">${value ?? ''}</pre>`;
  const body = html`<div class="summary"><span class="state state-${t.state}" id="task-state">${t.state}</span><span>${t.name ?? 'name not seen yet'}</span>
<span class="muted mono">${t.uuid}</span></div>
${actions(ctx, t, o.abortable)}
<div class="grid"><dl class="kv" id="task-fields">
<dt>name</dt><dd>${t.name ?? ''}</dd><dt>worker</dt><dd>${t.worker ? html`<a href="${workerHref(ctx, t.worker)}">${t.worker}</a>` : ''}</dd>
<dt>queue</dt><dd>${t.queue ? html`<a href="${ctx.href('/ui/queues', { queue: t.queue })}">${t.queue}</a>` : ''}</dd>
<dt>exchange / routing key</dt><dd>${t.exchange ?? ''} ${t.routing_key ?? ''}</dd><dt>sent by</dt><dd>${t.client ?? ''}</dd>
<dt>retries</dt><dd>${t.retries ?? ''}</dd><dt>eta</dt><dd>${t.eta ?? ''}</dd><dt>expires</dt><dd>${t.expires ?? ''}</dd>
<dt>runtime</dt><dd>${t.runtime === null ? '' : `${t.runtime.toFixed(3)} s`}</dd>
${t.state === 'REVOKED' ? html`<dt>revoked</dt><dd>${t.terminated ? `terminated (${t.signum ?? ''})` : t.expired ? 'expired' : 'before it ran'}</dd>` : ''}
</dl><dl class="kv" id="task-family"><dt>parent</dt><dd id="parent">${family(ctx, t, t.parent_id, 'none (a retry names the task itself as its parent)')}</dd><dt>root</dt><dd id="root">${family(ctx, t, t.root_id, 'this task')}</dd>
<dt>children</dt><dd id="children">${others.length ? others.map((c, i) => html`${i ? html`<br>` : ''}${link(ctx, c)}`) : html`<span class="muted">none</span>`}</dd></dl></div>
${timeline(t)}
${seesPayload ? html`${pre('task-args', 'args', t.args)}${pre('task-kwargs', 'kwargs', t.kwargs)}${t.result !== null ? pre('task-result', 'result', t.result) : ''}` : html`<p class="muted" id="payload-hidden">args, kwargs and result are hidden for your role.</p>`}
${failure(t)}`;
  return layout(ctx, { title: `Task ${t.name ?? t.uuid}`, section: 'tasks', body });
}
