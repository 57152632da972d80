import { roleAtLeast, type Principal, type Role } from '../auth/principal.js';

/**
 * `tasks.payload_role`, applied in one place. A task's arguments and result may hold personal
 * data (a password kwarg, a card number); below the payload role they are shown as null and
 * named in `hidden_fields`, so a client can tell "hidden" from "none". Every route that returns
 * task payloads asks this rule for its caller's view (docs/security.md lists them): the task
 * store's records, results from the result backend, and the inspect replies that carry tasks
 * (active, reserved, scheduled), whether fresh, kept in the workers snapshot or read back from
 * tasks.persist.
 */

/** Fields of a kept task (and search qualifiers) that may hold personal data. */
export const PAYLOAD_FIELDS = ['args', 'kwargs', 'result'] as const;
export type PayloadField = (typeof PAYLOAD_FIELDS)[number];

/** Inspect commands whose replies list tasks with their arguments. */
const TASK_LISTS = new Set(['active', 'reserved', 'scheduled']);
/** A listed task's argument keys: Celery 5.2.6's `Request.info()` has args and kwargs; later ones add the reprs. */
const INSPECTED_PAYLOAD = ['args', 'kwargs', 'argsrepr', 'kwargsrepr'];

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** What one caller may see of task payloads. */
export interface PayloadView {
  readonly visible: boolean;
  /** A task in Flower's shape (flower-shape.ts) or any record with payload fields. */
  task(task: Json): Json;
  /** Flower's result answer (`result` only). */
  result(answer: Json): Json;
  /** One worker's reply to an inspect command: the task lists lose their arguments. */
  inspectReply(command: string, reply: unknown): unknown;
  /** Flower's /api/workers entries (one reply per inspect command, by command). */
  workerReplies<T extends Json>(replies: T): T;
}

export class PayloadRule {
  readonly #hidden: PayloadView;

  constructor(readonly role: Role) {
    this.#hidden = {
      visible: false,
      task: (task) => hide(task, PAYLOAD_FIELDS),
      result: (answer) => hide(answer, ['result']),
      inspectReply: (command, reply) => (TASK_LISTS.has(command) && Array.isArray(reply) ? reply.map(hideInspected) : reply),
      workerReplies: <T extends Json>(replies: T): T => {
        const out: Json = { ...replies };
        for (const command of TASK_LISTS) if (command in out) out[command] = this.#hidden.inspectReply(command, out[command]);
        return out as T;
      },
    };
  }

  sees(principal: Principal | undefined): boolean {
    return principal !== undefined && roleAtLeast(principal.role, this.role);
  }

  view(principal: Principal | undefined): PayloadView {
    return this.sees(principal) ? VISIBLE : this.#hidden;
  }
}

const VISIBLE: PayloadView = {
  visible: true,
  task: (task) => task,
  result: (answer) => answer,
  inspectReply: (_command, reply) => reply,
  workerReplies: (replies) => replies,
};

/** A copy with `fields` null and listed in `hidden_fields` (fields it does not have are left out). */
function hide(record: Json, fields: readonly string[]): Json {
  const out: Json = { ...record };
  const hidden = fields.filter((f) => f in out);
  for (const f of hidden) out[f] = null;
  return hidden.length > 0 ? { ...out, hidden_fields: hidden } : out;
}

/** One entry of active / reserved (the request itself) or scheduled (`{eta, priority, request}`). */
function hideInspected(entry: unknown): unknown {
  if (!isObject(entry)) return entry;
  const out = hide(entry, INSPECTED_PAYLOAD);
  if (isObject(entry.request)) out.request = hide(entry.request, INSPECTED_PAYLOAD);
  return out;
}
