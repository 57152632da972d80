import type { TaskMessage } from '../transport/task-publisher.js';
import { cutRepr, pyJson, pyRepr } from './python-text.js';

/**
 * A Celery task message, protocol 2, exactly as a Celery 5.2.6 client publishes it
 * (docs/wire-protocol.md §D; test/fixtures/captures/celery-5.2.6/amqp_task_messages.json and
 * redis_task_message_and_unacked.json): headers in Celery's order, the body
 * `[args, kwargs, embed]` as kombu's json serializer writes it, and the AMQP properties.
 */

/** Celery's argsrepr_maxsize and kwargsrepr_maxsize defaults. */
const REPR_MAX = 1024;

export interface TaskMessageInput {
  id: string;
  name: string;
  args: readonly unknown[];
  kwargs: Readonly<Record<string, unknown>>;
  queue: string;
  /** 0-255 on RabbitMQ; kombu's Redis transport files 0-9 under its priority steps. */
  priority: number;
  eta?: Date;
  expires?: Date;
  /** [hard, soft] seconds: Celery's `timelimit` header. */
  timeLimit?: readonly [number | null, number | null];
  ignoreResult?: boolean;
  /** Another name to log the task under (Celery's `shadow`). */
  shadow?: string;
  /** `gen<pid>@<host>`, as Celery names a client. */
  origin: string;
  /** The client's reply address (Celery's app oid). */
  replyTo: string;
  /** When it is sent: the amqp `expiration` is counted from here. */
  now: Date;
}

/** datetime.isoformat() of an aware UTC datetime: microseconds only when non-zero. */
export function pythonIsoUtc(d: Date): string {
  const iso = d.toISOString(); // 2026-11-30T00:51:44.975Z
  const ms = d.getUTCMilliseconds();
  return `${iso.slice(0, 19)}${ms === 0 ? '' : `.${String(ms * 1000).padStart(6, '0')}`}+00:00`;
}

export function buildTaskMessage(input: TaskMessageInput): TaskMessage {
  const headers = {
    lang: 'py',
    task: input.name,
    id: input.id,
    shadow: input.shadow ?? null,
    eta: input.eta ? pythonIsoUtc(input.eta) : null,
    expires: input.expires ? pythonIsoUtc(input.expires) : null,
    group: null,
    group_index: null,
    retries: 0,
    timelimit: [input.timeLimit?.[0] ?? null, input.timeLimit?.[1] ?? null],
    root_id: input.id,
    parent_id: null,
    argsrepr: cutRepr(pyRepr(input.args), REPR_MAX),
    kwargsrepr: cutRepr(pyRepr(input.kwargs), REPR_MAX),
    origin: input.origin,
    ignore_result: input.ignoreResult ?? false,
  };
  const body = pyJson([input.args, input.kwargs, { callbacks: null, errbacks: null, chain: null, chord: null }]);
  // Celery: an expiry already past is sent with expiration 0 (RabbitMQ drops it at once).
  const expiration = input.expires ? String(Math.max(0, Math.trunc(input.expires.getTime() - input.now.getTime()))) : undefined;
  return {
    exchange: '',
    routingKey: input.queue,
    body,
    contentType: 'application/json',
    contentEncoding: 'utf-8',
    headers,
    properties: {
      correlation_id: input.id,
      reply_to: input.replyTo,
      delivery_mode: 2,
      ...(expiration !== undefined ? { expiration } : {}),
      priority: input.priority,
    },
  };
}
