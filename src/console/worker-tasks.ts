import { postForm, roleFor } from './actions.js';
import { html, isoTime, json, type Html, rowsOr } from './html.js';
import type { ConsoleContext } from './layout.js';

/** A task as `inspect active/reserved` report it (scheduled wraps it in `request`, with `eta`). */
export interface InspectedTask {
  id?: unknown;
  name?: unknown;
  args?: unknown;
  kwargs?: unknown;
  time_start?: unknown;
  worker_pid?: unknown;
  delivery_info?: { routing_key?: unknown; redelivered?: unknown };
  eta?: unknown;
  request?: InspectedTask;
  /** Set when tasks.payload_role hides the arguments from this caller (payload.ts). */
  hidden_fields?: unknown;
}

export const taskHref = (ctx: ConsoleContext, id: string): string => ctx.href(`/ui/tasks/${encodeURIComponent(id)}`);

/** Revoke, and revoke with terminate, through Flower's revoke path, by role as the control layer decides. */
export function revokeForms(ctx: ConsoleContext, id: string): Html {
  const path = `/api/task/revoke/${encodeURIComponent(id)}`;
  return html`${postForm(ctx, roleFor('revoke'), path, 'Revoke', { name: 'revoke' })}${postForm(
    ctx,
    roleFor('revoke', { terminate: true }),
    path,
    'Terminate',
    {
      args: { terminate: true, signal: 'SIGTERM' },
      ask: `Terminate task ${id}? Its process gets SIGTERM.`,
      name: 'terminate',
    },
  )}`;
}

function started(t: InspectedTask): string {
  return typeof t.time_start === 'number' ? isoTime(t.time_start * 1000) : '';
}

/** active, reserved or scheduled: one row per task, args shown short (the task page has them whole). */
export function taskRows(ctx: ConsoleContext, kind: 'active' | 'reserved' | 'scheduled', tasks: InspectedTask[]): Html {
  const canRevoke = ctx.can(roleFor('revoke'));
  const rows = tasks.map((entry) => {
    const t = kind === 'scheduled' ? (entry.request ?? {}) : entry;
    const id = String(t.id ?? '');
    return html`<tr data-task-id="${id}"><td class="mono"><a href="${taskHref(ctx, id)}">${id}</a></td><td>${t.name ?? ''}</td>
<td class="mono truncate">${t.hidden_fields ? html`<span class="muted">hidden for your role</span>` : html`${json(t.args ?? [])} ${json(t.kwargs ?? {})}`}</td><td>${kind === 'scheduled' ? String(entry.eta ?? '') : started(t)}</td>
<td>${t.worker_pid ?? ''}</td><td>${t.delivery_info?.routing_key ?? ''}</td>${canRevoke ? html`<td>${revokeForms(ctx, id)}</td>` : ''}</tr>`;
  });
  return html`<table id="${kind}"><thead><tr><th>task id</th><th>name</th><th>args, kwargs</th><th>${kind === 'scheduled' ? 'eta' : 'started'}</th><th>pid</th><th>routing key</th>${canRevoke ? html`<th></th>` : ''}</tr></thead>
<tbody>${rowsOr(rows, 7, 'none')}</tbody></table>`;
}
