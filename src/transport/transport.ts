/**
 * The one narrow interface every broker transport implements. A transport speaks to one broker
 * (RabbitMQ or Redis) in Celery/kombu 5.2's exact wire layout and knows nothing about what the
 * events mean: it unwraps the broker's envelope and hands over raw event bodies, broadcasts pidbox
 * control commands and collects the replies, and reads queue depths. Everything Celery-semantic
 * (decoding event JSON, state, metrics) happens once, above this interface.
 */

/** One message from the `celeryev` exchange, envelope removed, body still serialized. */
export interface RawEventMessage {
  /** As the broker delivered it (`application/json` for Celery's default event serializer). */
  readonly contentType: string | undefined;
  readonly contentEncoding: string | undefined;
  /** The serialized body: one event object, or an array of them for `task.multi` batches. */
  readonly body: Buffer;
  /** The routing key (`worker.heartbeat`, `task.multi`...), informational only. */
  readonly routingKey: string;
}

/** Why a transport threw a message away before it reached the decoder. */
export type TransportDropReason =
  | 'bad_envelope' // Redis: the PUBLISH payload is not a kombu JSON envelope
  | 'bad_body_encoding' // Redis: body_encoding is base64 but the body is not
  | 'oversize' // larger than the configured maximum message size
  | 'backlog_full'; // Redis: read off the socket faster than processed, past the backlog bound

/** Where a transport delivers what it receives. Called synchronously, in broker order. */
export interface EventSink {
  onEvents(message: RawEventMessage): void;
  onDrop(reason: TransportDropReason): void;
  /**
   * The event subscription is (re-)established. Celery's EventReceiver broadcasts the `heartbeat`
   * wake-up at this point so every worker announces itself at once; the caller does the same.
   */
  onSubscribed(): void;
}

/** What a transport reports about its connection, for readiness and self-telemetry. */
export interface TransportObserver {
  connected(): void;
  /** The connection was lost or could not be made; the transport keeps retrying by itself. */
  disconnected(error: Error): void;
  /** A reconnect attempt is scheduled after `delayMs` (capped exponential backoff). */
  reconnecting(attempt: number, delayMs: number): void;
  /**
   * AMQP only, on each subscribe: whether events are read by the lean delivery path (true) or,
   * because amqplib's internals changed, by amqplib itself (false: about twice the CPU per event).
   */
  leanDelivery?(active: boolean): void;
}

/** A Celery pidbox request, as `kombu.pidbox.Mailbox._broadcast` puts it on the wire. */
export interface ControlRequest {
  readonly method: string;
  readonly arguments: Readonly<Record<string, unknown>>;
  /**
   * Node names (`celery@host`). `null` addresses every worker on the vhost/db and is only ever
   * sent on purpose: callers above refuse empty destinations unless "all workers" was asked for.
   */
  readonly destination: readonly string[] | null;
  /** Used by workers only when `destination` is null. */
  readonly pattern?: string | null;
  readonly matcher?: 'glob' | 'pcre' | null;
}

export interface BroadcastOptions {
  /** Wait for replies (a ticket and reply_to are sent); false sends a cast, like `revoke`. */
  readonly reply: boolean;
  /** Idle timeout between replies, as kombu's `_collect` uses it. */
  readonly timeoutMs: number;
  /** Stop as soon as this many replies arrived (defaults to destination.length when set). */
  readonly limit?: number;
}

/** One worker's answer: `{"<nodename>": <value>}` on the wire. */
export interface ControlReply {
  readonly worker: string;
  readonly value: unknown;
}

export interface QueueDepth {
  readonly name: string;
  /** Ready messages (RabbitMQ) or the sum over the priority lists (Redis); null if unreadable. */
  readonly messages: number | null;
  /** Consumers attached (RabbitMQ only; Redis has no such count). */
  readonly consumers: number | null;
  readonly error?: string;
  /**
   * Redis: the task id of the oldest message of each non-empty priority list, read with LINDEX
   * (which leaves the queue as it is). RabbitMQ cannot show a message without taking it.
   */
  readonly oldestTaskIds?: readonly string[];
}

export interface BrokerTransport {
  readonly kind: 'amqp' | 'redis';
  /**
   * Connects in the background and keeps reconnecting forever with capped backoff; never throws
   * and never rejects. Events go to `sink` from the first successful subscription on.
   */
  start(sink: EventSink): void;
  isConnected(): boolean;
  /**
   * Publishes a pidbox command and collects replies until `limit` replies arrived or the idle
   * timeout passed. Rejects fast (without publishing) while the broker is disconnected, so no
   * command is ever sent late after an outage.
   */
  broadcast(request: ControlRequest, options: BroadcastOptions): Promise<ControlReply[]>;
  /** Reads each queue's depth; a missing queue is 0 messages, never an exception. */
  queueDepths(queues: readonly string[], timeoutMs: number): Promise<QueueDepth[]>;
  /**
   * Removes every ready message of `queue` in one broker operation and answers how many went:
   * RabbitMQ `queue.purge` (unacknowledged messages stay with their consumers); Redis every
   * priority list in one MULTI, so a message published meanwhile is either counted and removed
   * or left in place. Rejects with BrokerUnavailableError while disconnected (nothing removed)
   * and QueueNotFoundError when RabbitMQ has no such queue.
   */
  purgeQueue(queue: string, timeoutMs: number): Promise<number>;
  /** Idempotent. Stops reconnecting and releases every broker resource. */
  close(): Promise<void>;
}

/** Thrown by `purgeQueue` for a queue the broker does not have. */
export class QueueNotFoundError extends Error {
  constructor(queue: string) {
    super(`no queue '${queue}' on the broker`);
    this.name = 'QueueNotFoundError';
  }
}

/** Thrown by `broadcast` when the broker is not connected. */
export class BrokerUnavailableError extends Error {
  constructor(message = 'broker not connected') {
    super(message);
    this.name = 'BrokerUnavailableError';
  }
}
