import type { BroadcastOptions, ControlRequest } from './transport.js';

/**
 * What both transports put in a pidbox request and how they decide a broadcast is complete:
 * the broker-independent half of `kombu.pidbox.Mailbox._broadcast` / `_collect`
 * (docs/wire-protocol.md §B1-B3). The envelope around it is each broker's own.
 */

/** kombu's reply exchange (a direct exchange; on Redis a virtual one). */
export const REPLY_EXCHANGE = 'reply.celery.pidbox';
export const PIDBOX_EXCHANGE = 'celery.pidbox';

/**
 * kombu's `LamportClock` (kombu/clocks.py): `forward()` before each request sent, `adjust(other)`
 * on each reply received, which sets the value to `max(value, other) + 1` — receiving a message
 * is itself an event, so the clock ends strictly past both sides.
 */
export class LamportClock {
  #value = 0;

  get value(): number {
    return this.#value;
  }

  forward(): number {
    this.#value += 1;
    return this.#value;
  }

  adjust(other: number): number {
    if (Number.isFinite(other)) this.#value = Math.max(this.#value, Math.trunc(other)) + 1;
    return this.#value;
  }
}

/** Where a worker sends its reply: the reply exchange, routed by our oid. */
export interface ReplyAddress {
  readonly ticket: string;
  readonly oid: string;
}

/** What a request body is made of: a ControlRequest, or the Redis envelope's input. */
export type PidboxRequestFields = Pick<ControlRequest, 'method' | 'arguments' | 'destination'> & {
  readonly pattern?: string | null | undefined;
  readonly matcher?: string | null | undefined;
};

/** The request body, keys in the order kombu's `_broadcast` builds the dict (§B1). */
export function pidboxRequestBody(request: PidboxRequestFields, reply?: ReplyAddress): Record<string, unknown> {
  const body: Record<string, unknown> = {
    method: request.method,
    arguments: request.arguments,
    destination: request.destination,
    pattern: request.pattern ?? null,
    matcher: request.matcher ?? null,
  };
  if (reply) {
    body['ticket'] = reply.ticket;
    body['reply_to'] = { exchange: REPLY_EXCHANGE, routing_key: reply.oid };
  }
  return body;
}

/** The `expires` header: epoch seconds after which workers may ignore the request; 0 for none. */
export function requestExpires(options: BroadcastOptions, nowMs: number): number {
  return options.timeoutMs > 0 ? nowMs / 1000 + options.timeoutMs / 1000 : 0;
}

/**
 * How many replies end the collection early: a positive `limit`, else (as kombu's `_broadcast`
 * does with `limit=None`) one per named destination; undefined collects until the idle timeout.
 */
export function replyLimit(request: ControlRequest, options: BroadcastOptions): number | undefined {
  if (options.limit !== undefined && options.limit > 0) return options.limit;
  const named = request.destination?.length ?? 0;
  return named > 0 ? named : undefined;
}
