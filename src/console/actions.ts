import type { Role } from '../auth/index.js';
import { COMMANDS, type CommandName } from '../control/commands.js';
import { html, type Html } from './html.js';
import type { ConsoleContext } from './layout.js';

/**
 * Action forms. Who may see a form comes from the COMMANDS table (the role the control layer
 * itself enforces), and every form is sent by console.js to the existing control API: the
 * console has no command implementation of its own, and a viewer gets no form at all.
 */

export interface Field {
  readonly arg: string;
  readonly label: string;
  readonly kind: 'number' | 'text' | 'checkbox';
  readonly value?: string;
  readonly wide?: boolean;
  /** What an empty box sends: null or "" (both mean "no limit" to some commands); default: leave the argument out. */
  readonly empty?: 'null' | 'keep';
}

export interface ActionSpec {
  readonly command: CommandName;
  readonly label: string;
  readonly fields?: readonly Field[];
  /** Arguments fixed by the page (e.g. the task this row is about); they also decide the role. */
  readonly args?: Record<string, unknown>;
  /** Ask the control layer to poll until the effect shows, and report it. */
  readonly confirmEffect?: boolean;
  /** A browser confirm() first, for what cannot be undone. */
  readonly ask?: string;
}

/** The least role this command needs with these arguments, as the control API will judge it. */
export function roleFor(command: CommandName, args: Record<string, unknown> = {}): Role {
  return COMMANDS.get(command)!.role(args);
}

function field(f: Field): Html {
  const attrs = html`data-arg="${f.arg}" aria-label="${f.label}"${f.empty ? html` data-empty="${f.empty}"` : ''}`;
  if (f.kind === 'checkbox') return html`<label><input type="checkbox" ${attrs}> ${f.label}</label>`;
  if (f.kind === 'number')
    return html`<input type="number" min="0" step="any" data-type="number" placeholder="${f.label}" value="${f.value ?? ''}" ${attrs}>`;
  return html`<input placeholder="${f.label}" value="${f.value ?? ''}"${f.wide ? html` class="wide"` : ''} ${attrs}>`;
}

/** One command form for one worker; nothing when the caller's role may not run it. */
export function commandForm(ctx: ConsoleContext, worker: string | undefined, spec: ActionSpec): Html {
  if (!ctx.can(roleFor(spec.command, spec.args))) return html``;
  const danger = roleFor(spec.command, spec.args) === 'admin';
  return html`<form class="action" data-command="${spec.command}"${worker !== undefined ? html` data-worker="${worker}"` : ''}${spec.args ? html` data-args="${JSON.stringify(spec.args)}"` : ''}${spec.confirmEffect ? html` data-confirm="1"` : ''}${spec.ask ? html` data-ask="${spec.ask}"` : ''}>${(spec.fields ?? []).map(field)}<button type="submit" name="${spec.command}"${danger ? html` class="danger"` : ''}>${spec.label}</button></form>`;
}

/** A form posted as JSON to another API path (Flower's task paths), shown when `role` allows. */
export function postForm(
  ctx: ConsoleContext,
  role: Role,
  path: string,
  label: string,
  o: { args?: Record<string, unknown>; ask?: string; name: string },
): Html {
  if (!ctx.can(role)) return html``;
  return html`<form class="action" data-post="${path}" data-label="${label}" data-args="${JSON.stringify(o.args ?? {})}"${o.ask ? html` data-ask="${o.ask}"` : ''}><button type="submit" name="${o.name}"${role === 'admin' ? html` class="danger"` : ''}>${label}</button></form>`;
}

/** Everything that can be done to one live worker, in the order an on-call person reaches for it. */
export function workerActions(worker: string): ActionSpec[] {
  return [
    { command: 'pool_grow', label: 'Grow pool', fields: [{ arg: 'n', label: 'n', kind: 'number', value: '1' }], confirmEffect: true },
    { command: 'pool_shrink', label: 'Shrink pool', fields: [{ arg: 'n', label: 'n', kind: 'number', value: '1' }], confirmEffect: true },
    {
      command: 'autoscale',
      label: 'Autoscale',
      fields: [
        { arg: 'max', label: 'max', kind: 'number' },
        { arg: 'min', label: 'min', kind: 'number' },
      ],
      confirmEffect: true,
    },
    { command: 'add_consumer', label: 'Add consumer', fields: [{ arg: 'queue', label: 'queue', kind: 'text' }], confirmEffect: true },
    { command: 'cancel_consumer', label: 'Cancel consumer', fields: [{ arg: 'queue', label: 'queue', kind: 'text' }], confirmEffect: true },
    { command: 'revoke', label: 'Revoke', fields: [{ arg: 'task_id', label: 'task id', kind: 'text', wide: true }], confirmEffect: true },
    {
      command: 'revoke',
      label: 'Revoke and terminate',
      fields: [{ arg: 'task_id', label: 'task id', kind: 'text', wide: true }],
      args: { terminate: true },
    },
    { command: 'pool_restart', label: 'Restart pool', ask: `Restart the pool of ${worker}?` },
    { command: 'shutdown', label: 'Shut down', ask: `Shut ${worker} down? It finishes its running tasks and exits.`, confirmEffect: true },
  ];
}

/** Per registered task: its rate limit and time limits. */
export function taskTypeActions(task: string): ActionSpec[] {
  return [
    {
      command: 'rate_limit',
      label: 'Set rate',
      args: { task_name: task },
      fields: [{ arg: 'rate_limit', label: 'e.g. 10/m', kind: 'text', empty: 'keep' }],
      confirmEffect: true,
    },
    {
      command: 'time_limit',
      label: 'Set limits',
      args: { task_name: task },
      fields: [
        { arg: 'soft', label: 'soft s', kind: 'number', empty: 'null' },
        { arg: 'hard', label: 'hard s', kind: 'number', empty: 'null' },
      ],
      confirmEffect: true,
    },
  ];
}
