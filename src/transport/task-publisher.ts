/**
 * Sending a task message to the broker (Celery's `send_task`): the interface the task API uses,
 * what its failures mean, and the message as the broker carries it. Each broker's publisher lives
 * beside its transport (./amqp/task-publisher.ts, ./redis/task-publisher.ts) and opens its
 * connection from ./connections.ts, like every other connection.
 */

/** A task message, protocol 2, as the broker carries it (../tasks/task-message.ts builds it). */
export interface TaskMessage {
  readonly exchange: '';
  /** Celery publishes a direct route to the anonymous exchange with the queue as routing key. */
  readonly routingKey: string;
  readonly body: string;
  readonly contentType: 'application/json';
  readonly contentEncoding: 'utf-8';
  readonly headers: Readonly<Record<string, unknown>>;
  readonly properties: {
    readonly correlation_id: string;
    readonly reply_to: string;
    readonly delivery_mode: 2;
    /** Milliseconds as text (kombu's `str(int(expires_s * 1000))`), when `expires` is set. */
    readonly expiration?: string;
    readonly priority: number;
  };
}

/**
 * Publishes on a connection of its own: RabbitMQ advises against publishing on the connection
 * that consumes (flow control on one would stall the other), and the event transport stays
 * untouched. Connects on first use and again after any loss; never queues a message to be sent
 * later, so a failure reported to the caller is never followed by a late delivery.
 */
export interface TaskPublisher {
  /** Resolves once the broker has taken the message (RabbitMQ: publisher confirm; Redis: LPUSH reply). */
  publish(message: TaskMessage): Promise<void>;
  close(): Promise<void>;
}

/** Nothing was sent: the broker could not be reached (→ 503). */
export class PublishUnavailableError extends Error {}
/** Sent, but the broker did not confirm in time: the task may or may not be queued (→ 504). */
export class PublishUnconfirmedError extends Error {}

/** Every step of a publish (connect, queue check, confirm) is bounded by this. */
export const PUBLISH_TIMEOUT_MS = 5_000;

/** Races `promise` against `ms`, failing with the publisher's own error for that step. */
export function publishDeadline<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(onTimeout()), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
