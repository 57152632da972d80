import type { Role } from '../auth/index.js';
import { LiteralError, parsePythonLiteral } from '../tasks/python-literal.js';
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
const links = (ctx: ConsoleContext, ids: string[]) =>
  ids.length ? ids.map((c, i) => html`${i ? html`<br>` : ''}${link(ctx, c)}`) : html`<span class="muted">none</span>`;

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

/** Who may re-run a task: task submission's role, and its allow-list for the task's name. */
export interface RerunRule {
  readonly role: Role;
  allows(name: string): boolean;
}

/** A kept repr as JSON for the edit form, or undefined when it cannot be read back (the API would say 409). */
function asJson(repr: string | null): string | undefined {
  if (repr === null) return undefined;
  try {
    return JSON.stringify(parsePythonLiteral(repr));
  } catch (e) {
    if (e instanceof LiteralError) return undefined;
    throw e;
  }
}

/** Re-run as is (when the args can be read back) and edit-and-re-run, posted to POST /api/task/rerun/<id>. */
function rerunForms(ctx: ConsoleContext, t: Readonly<TaskHistory>, rule: RerunRule | undefined, seesPayload: boolean): Html {
  if (!rule || t.name === null || !ctx.can(rule.role) || !rule.allows(t.name)) return html``;
  const path = `/api/task/rerun/${encodeURIComponent(t.uuid)}`;
  const args = asJson(t.args);
  const kwargs = asJson(t.kwargs);
  const asIs =
    args !== undefined && kwargs !== undefined
      ? postForm(ctx, rule.role, path, 'Re-run', {
          name: 'rerun',
          ask: `Re-run ${t.name} with the same arguments, on queue ${t.queue ?? 'the default queue'}?`,
        })
      : html`<p class="muted" id="rerun-as-is-refused">Its args or kwargs were cut short or cannot be read back exactly: give them below to re-run it.</p>`;
  // The edit form shows the arguments only to roles that may see them; others re-run with edits only.
  const box = (arg: string, value: string | undefined) =>
    html`<label>${arg}<textarea data-arg="${arg}" data-type="json" rows="2" aria-label="${arg} (JSON)">${seesPayload ? (value ?? '') : ''}</textarea></label>`;
  return html`${asIs}<form class="action rerun-edit" data-post="${path}" data-label="Edit and re-run" id="rerun-edit">
${box('args', args)}${box('kwargs', kwargs)}<label>queue<input data-arg="queue" aria-label="queue" value="${t.queue ?? ''}"></label>
<button type="submit" name="rerun-edited">Edit and re-run</button></form>`;
}

/**
 * Re-run (task submission's rule), revoke and terminate (the control layer's roles) and abort
 * (AbortableTask, through the result backend, when there is one) while it can be stopped.
 */
function actions(
  ctx: ConsoleContext,
  t: Readonly<TaskHistory>,
  o: { abortable: boolean; rerun?: RerunRule | undefined; seesPayload: boolean },
): Html {
  const stoppable = !FINAL.has(t.state) && ctx.can(roleFor('revoke'));
  const abort =
    !stoppable || !o.abortable
      ? html``
      : postForm(ctx, 'operator', `/api/task/abort/${encodeURIComponent(t.uuid)}`, 'Abort', {
          name: 'abort',
          ask: `Abort task ${t.uuid}? It stops at its next is_aborted() check.`,
        });
  const rerun = rerunForms(ctx, t, o.rerun, o.seesPayload);
  if (!stoppable && rerun.text === '') return html``;
  return html`<section class="actions" id="actions"><h2>Actions</h2>${stoppable ? revokeForms(ctx, t.uuid) : ''}${abort}${rerun}</section>`;
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
  o: { seesPayload: boolean; abortable: boolean; reruns?: string[]; rerun?: RerunRule },
): string {
  const { seesPayload } = o;
  const others = children.filter((c) => c !== t.uuid);
  const pre = (id: string, label: string, value: string | null) => html`<h2>${label}</h2><pre id="${id}">${value ?? ''}</pre>`;
  const body = html`<div class="summary"><span class="state state-${t.state}" id="task-state">${t.state}</span><span>${t.name ?? 'name not seen yet'}</span>
<span class="muted mono">${t.uuid}</span></div>
${actions(ctx, t, o)}
<div class="grid"><dl class="kv" id="task-fields">
<dt>name</dt><dd>${t.name ?? ''}</dd><dt>worker</dt><dd>${t.worker ? html`<a href="${workerHref(ctx, t.worker)}">${t.worker}</a>` : ''}</dd>
<dt>queue</dt><dd>${t.queue ? html`<a href="${ctx.href('/ui/queues', { queue: t.queue })}">${t.queue}</a>` : ''}</dd>
<dt>exchange / routing key</dt><dd>${t.exchange ?? ''} ${t.routing_key ?? ''}</dd><dt>sent by</dt><dd>${t.client ?? ''}</dd>
<dt>retries</dt><dd>${t.retries ?? ''}</dd><dt>eta</dt><dd>${t.eta ?? ''}</dd><dt>expires</dt><dd>${t.expires ?? ''}</dd>
<dt>runtime</dt><dd>${t.runtime === null ? '' : `${t.runtime.toFixed(3)} s`}</dd>
${t.state === 'REVOKED' ? html`<dt>revoked</dt><dd>${t.terminated ? `terminated (${t.signum ?? ''})` : t.expired ? 'expired' : 'before it ran'}</dd>` : ''}
</dl><dl class="kv" id="task-family"><dt>parent</dt><dd id="parent">${family(ctx, t, t.parent_id, 'none (a retry names the task itself as its parent)')}</dd><dt>root</dt><dd id="root">${family(ctx, t, t.root_id, 'this task')}</dd>
<dt>children</dt><dd id="children">${links(ctx, others)}</dd>
${t.rerun_of !== null ? html`<dt>re-run of</dt><dd id="rerun-of">${link(ctx, t.rerun_of)}</dd>` : ''}${o.reruns?.length ? html`<dt>re-runs</dt><dd id="reruns">${links(ctx, o.reruns)}</dd>` : ''}</dl></div>
${timeline(t)}
${seesPayload ? html`${pre('task-args', 'args', t.args)}${pre('task-kwargs', 'kwargs', t.kwargs)}${t.result !== null ? pre('task-result', 'result', t.result) : ''}` : html`<p class="muted" id="payload-hidden">args, kwargs and result are hidden for your role.</p>`}
${failure(t)}`;
  return layout(ctx, { title: `Task ${t.name ?? t.uuid}`, section: 'tasks', body });
}
