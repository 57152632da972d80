import { randomUUID } from 'node:crypto';
import { connect, type Channel, type ChannelModel, type ConsumeMessage } from 'amqplib';
import type { Logger } from '../log.js';
import { backoffDelay } from './backoff.js';
import {
  BrokerUnavailableError,
  type BroadcastOptions,
  type BrokerTransport,
  type ControlReply,
  type ControlRequest,
  type EventSink,
  type QueueDepth,
  type TransportObserver,
} from './transport.js';

/**
 * RabbitMQ transport in Celery 5.2 / kombu 5.2's exact layout (docs/wire-protocol.md §A1, §A3, §B1-B3, §B6,
 * §C1). One connection carries three things: the event subscription (own channel, manual batched
 * acks), the pidbox (one channel, one long-lived reply queue per connection, replies matched by
 * ticket), and short-lived channels for passive queue checks. Any loss tears the whole connection
 * down and a single reconnect loop re-runs the full topology setup, so there is exactly one
 * recovery path to reason about (amqplib's own recovery wrapper is not used for that reason).
 * A broadcast still collecting when the connection drops (or close() runs) resolves with the
 * replies that already arrived, as an idle timeout would.
 */

export interface AmqpTransportSettings {
  /** Full amqp:// or amqps:// URL, credentials included. Never logged. */
  readonly url: string;
  readonly eventQueue: {
    /** `celeryev.<id>`: kept across reconnects, so a quick reconnect resumes the same queue. */
    readonly name: string;
    readonly messageTtlMs: number;
    readonly expiresMs: number;
    readonly prefetch: number;
    /**
     * Celery's receiver queue is auto-delete (gone with its last consumer). A queue with a fixed
     * name must outlive a restart instead, so events published meanwhile wait for us (until
     * x-expires): false there. Default true.
     */
    readonly autoDelete?: boolean;
  };
  readonly maxMessageBytes: number;
  /** AMQP heartbeat; a half-open socket is noticed after about two intervals without traffic. */
  readonly heartbeatSeconds: number;
  readonly reconnect: { readonly initialMs: number; readonly maxMs: number };
  readonly connectTimeoutMs: number;
}

const EVENT_EXCHANGE = 'celeryev';
const PIDBOX_EXCHANGE = 'celery.pidbox';
const REPLY_EXCHANGE = 'reply.celery.pidbox';
/** kombu's control_queue_expires (10 s) and control_queue_ttl (300 s), as the worker declares them. */
const REPLY_QUEUE_ARGUMENTS = { 'x-expires': 10_000, 'x-message-ttl': 300_000 };
/** Upper bound on how long an event stays unacked when traffic is too thin to fill a batch. */
const ACK_FLUSH_MS = 25;
/** Upper bound on a graceful connection close before the socket is simply destroyed. */
const CLOSE_GRACE_MS = 2_000;

/** One pidbox broadcast waiting for replies on the connection's reply queue. */
interface PendingBroadcast {
  readonly replies: ControlReply[];
  readonly limit: number | undefined;
  readonly idleMs: number;
  timer: NodeJS.Timeout | undefined;
  readonly resolve: (replies: ControlReply[]) => void;
}

/** Everything that lives and dies with one AMQP connection. */
interface Session {
  readonly model: ChannelModel;
  /** Our pidbox identity on this connection: reply routing key and reply queue `<oid>.reply.celery.pidbox`. */
  readonly oid: string;
  control: Channel | undefined;
  events: EventSubscription | undefined;
  readonly pending: Map<string, PendingBroadcast>;
  lost: boolean;
  /**
   * The first error the connection or a channel reported. amqplib closes the channels before it
   * emits the connection's own 'close', so this is what names the real cause (a heartbeat timeout,
   * a socket reset, a 406) rather than "channel closed".
   */
  cause: Error | undefined;
}

export class AmqpTransport implements BrokerTransport {
  readonly kind = 'amqp' as const;

  readonly #settings: AmqpTransportSettings;
  readonly #observer: TransportObserver;
  readonly #logger: Logger;
  readonly #connectUrl: string;
  #sink: EventSink | undefined;
  #session: Session | undefined;
  /** The connection being opened or set up, so close() can release it. */
  #opening: Session | undefined;
  #attempt = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  #connecting: Promise<void> | undefined;
  #closed = false;
  /** Lamport clock for pidbox request headers, as kombu's Mailbox keeps one. */
  #clock = 0;

  constructor(settings: AmqpTransportSettings, observer: TransportObserver, logger: Logger) {
    this.#settings = settings;
    this.#observer = observer;
    this.#logger = logger;
    this.#connectUrl = withHeartbeat(settings.url, settings.heartbeatSeconds);
  }

  start(sink: EventSink): void {
    if (this.#sink || this.#closed) return;
    this.#sink = sink;
    this.#runConnect();
  }

  isConnected(): boolean {
    return this.#session !== undefined;
  }

  // ---------------------------------------------------------------------------------------------
  // Connection lifecycle

  async #connect(): Promise<void> {
    if (this.#closed) return;
    let model: ChannelModel;
    try {
      model = await this.#open();
    } catch (error) {
      if (!this.#closed) this.#failed(asError(error));
      return;
    }
    if (this.#closed) {
      model.on('error', () => undefined);
      await closeModel(model);
      return;
    }
    const session: Session = { model, oid: randomUUID(), control: undefined, events: undefined, pending: new Map(), lost: false, cause: undefined };
    model.on('error', (error: Error) => {
      session.cause ??= error;
      this.#logger.warn({ err: error.message }, 'AMQP connection error');
    });
    model.on('close', (error?: Error) => this.#lose(session, error ?? new Error('connection closed by the broker')));
    model.on('blocked', (reason: string) => this.#logger.warn({ reason }, 'broker blocked the connection'));
    model.on('unblocked', () => this.#logger.info('broker unblocked the connection'));
    this.#opening = session;
    try {
      session.control = await this.#openPidbox(session);
      session.events = await this.#subscribeEvents(session);
    } catch (error) {
      this.#lose(session, asError(error));
      return;
    } finally {
      if (this.#opening === session) this.#opening = undefined;
    }
    if (session.lost) return;
    if (this.#closed) {
      this.#release(session).catch((error: unknown) => this.#logger.error({ err: asError(error).message }, 'releasing a session failed'));
      return;
    }
    this.#session = session;
    this.#attempt = 0;
    this.#logger.info({ queue: this.#settings.eventQueue.name }, 'connected to RabbitMQ, consuming events');
    this.#observer.connected();
    this.#notifySubscribed(session);
  }

  /** amqplib's socket `timeout` covers TCP + handshake; the outer deadline also covers TLS stalls. */
  async #open(): Promise<ChannelModel> {
    const opening = connect(this.#connectUrl, {
      timeout: this.#settings.connectTimeoutMs,
      noDelay: true,
      clientProperties: { connection_name: 'celery-autopilot' },
    });
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`connect timed out after ${this.#settings.connectTimeoutMs} ms`)), this.#settings.connectTimeoutMs + 250);
    });
    try {
      return await Promise.race([opening, deadline]);
    } catch (error) {
      // A connection that completes after we gave up must not linger.
      opening.then(
        (late) => {
          late.on('error', () => undefined);
          closeModel(late).catch((error: unknown) => this.#logger.error({ err: asError(error).message }, 'closing a late connection failed'));
        },
        () => undefined,
      );
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** A connection attempt failed before it was usable. */
  #failed(error: Error): void {
    this.#logger.warn({ err: error.message }, 'cannot connect to RabbitMQ');
    this.#observer.disconnected(error);
    this.#scheduleReconnect();
  }

  /** The connection (or one of its long-lived channels) is gone: drop it all and start over. */
  #lose(session: Session, fallback: Error): void {
    if (session.lost) return;
    session.lost = true;
    const error = session.cause ?? fallback;
    const wasConnected = this.#session === session;
    if (wasConnected) this.#session = undefined;
    this.#release(session).catch((error: unknown) => this.#logger.error({ err: asError(error).message }, 'releasing a session failed'));
    if (this.#closed) return;
    this.#logger.warn({ err: error.message, wasConnected }, 'lost the RabbitMQ connection');
    this.#observer.disconnected(error);
    this.#scheduleReconnect();
  }

  /**
   * A long-lived channel closed. When the whole connection is going, amqplib closes the channels
   * first and emits the connection's 'close' (with the real reason, e.g. CONNECTION_FORCED) in the
   * same tick, so the decision waits a microtask to report that reason instead.
   */
  #loseAfterChannel(session: Session, what: string): void {
    queueMicrotask(() => this.#lose(session, new Error(what)));
  }

  #scheduleReconnect(): void {
    if (this.#closed || this.#retryTimer) return;
    this.#attempt += 1;
    const delay = backoffDelay(this.#attempt, this.#settings.reconnect.initialMs, this.#settings.reconnect.maxMs);
    this.#observer.reconnecting(this.#attempt, delay);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#runConnect();
    }, delay);
  }

  /** Runs one connection attempt, remembered so close() can wait for it to wind down. */
  #runConnect(): void {
    const attempt = this.#connect().catch((error: unknown) => {
      // Only a throwing observer gets here; the loop must survive it or it would stop for good.
      this.#logger.error({ err: asError(error).message }, 'connect attempt failed unexpectedly');
      if (!this.#session) this.#scheduleReconnect();
    });
    this.#connecting = attempt;
    // `attempt` never rejects (the catch above), so settling and failing clear it alike.
    const forget = () => {
      if (this.#connecting === attempt) this.#connecting = undefined;
    };
    attempt.then(forget, forget);
  }

  /** Settles what depends on the session and closes its connection; never rejects. */
  async #release(session: Session): Promise<void> {
    session.lost = true;
    session.events?.retire();
    // Replies that already arrived are real answers, so a broadcast cut short by a lost
    // connection resolves with them, exactly like an idle timeout would; it never hangs.
    for (const ticket of [...session.pending.keys()]) finishBroadcast(session, ticket);
    await closeModel(session.model);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    const sessions = [this.#session, this.#opening].filter((s): s is Session => s !== undefined);
    this.#session = undefined;
    this.#opening = undefined;
    await Promise.all(
      sessions.map(async (session) => {
        session.events?.flushAcks();
        await this.#release(session);
      }),
    );
    // An attempt still opening its socket sees #closed when it completes and closes what it got.
    await this.#connecting;
  }

  #notifySubscribed(session: Session): void {
    if (session.lost || this.#session !== session) return;
    try {
      this.#sink?.onSubscribed();
    } catch (error) {
      this.#logger.error({ err: asError(error).message }, 'event sink failed in onSubscribed');
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Events (§A1, §A3)

  async #subscribeEvents(session: Session): Promise<EventSubscription> {
    const { name, messageTtlMs, expiresMs, prefetch, autoDelete = true } = this.#settings.eventQueue;
    const channel = await session.model.createChannel();
    const subscription = new EventSubscription(channel, this.#sink!, this.#settings.maxMessageBytes, prefetch, this.#logger);
    channel.on('error', (error: Error) => {
      if (subscription.retired) return; // a replaced channel's last words are no loss
      session.cause ??= error;
      this.#logger.warn({ err: error.message }, 'event channel error');
    });
    channel.on('close', () => {
      if (!subscription.retired) this.#loseAfterChannel(session, 'event channel closed');
    });
    await channel.assertExchange(EVENT_EXCHANGE, 'topic', { durable: true, autoDelete: false });
    const args: Record<string, number> = {};
    if (messageTtlMs > 0) args['x-message-ttl'] = Math.round(messageTtlMs);
    if (expiresMs > 0) args['x-expires'] = Math.round(expiresMs);
    await channel.assertQueue(name, { durable: false, autoDelete, exclusive: false, arguments: args });
    await channel.bindQueue(name, EVENT_EXCHANGE, '#');
    await channel.prefetch(prefetch);
    await channel.consume(
      name,
      (message) => {
        if (message) subscription.deliver(message);
        else
          this.#onEventConsumerCancelled(session, subscription).catch((error: unknown) =>
            this.#logger.error({ err: asError(error).message }, 're-subscribing after a consumer cancel failed'),
          );
      },
      { noAck: false },
    );
    return subscription;
  }

  /**
   * The broker cancelled our consumer (the queue was deleted, or its node went away). A fresh
   * channel avoids acking delivery tags of a queue that no longer exists, which RabbitMQ may
   * answer with a channel error.
   */
  async #onEventConsumerCancelled(session: Session, old: EventSubscription): Promise<void> {
    if (session.lost || old.retired) return;
    this.#logger.warn({ queue: this.#settings.eventQueue.name }, 'broker cancelled the event consumer; re-declaring the queue');
    old.flushAcks();
    old.retire();
    old.channel.close().catch(() => undefined);
    try {
      const next = await this.#subscribeEvents(session);
      if (session.lost) {
        next.retire();
        return;
      }
      session.events = next;
    } catch (error) {
      this.#lose(session, asError(error));
      return;
    }
    this.#notifySubscribed(session);
  }

  // ---------------------------------------------------------------------------------------------
  // Pidbox (§B1-B3, §B6)

  async #openPidbox(session: Session): Promise<Channel> {
    const channel = await session.model.createChannel();
    channel.on('error', (error: Error) => {
      session.cause ??= error;
      this.#logger.warn({ err: error.message }, 'pidbox channel error');
    });
    channel.on('close', () => this.#loseAfterChannel(session, 'pidbox channel closed'));
    await channel.assertExchange(PIDBOX_EXCHANGE, 'fanout', { durable: false, autoDelete: false });
    await channel.assertExchange(REPLY_EXCHANGE, 'direct', { durable: false, autoDelete: false });
    await this.#consumeReplies(session, channel);
    return channel;
  }

  async #consumeReplies(session: Session, channel: Channel): Promise<void> {
    const queue = `${session.oid}.reply.celery.pidbox`;
    await channel.assertQueue(queue, { durable: false, autoDelete: true, arguments: REPLY_QUEUE_ARGUMENTS });
    await channel.bindQueue(queue, REPLY_EXCHANGE, session.oid);
    await channel.consume(
      queue,
      (message) => {
        if (message) this.#onReply(session, message);
        else {
          this.#logger.warn({ queue }, 'broker cancelled the pidbox reply consumer; re-declaring it');
          this.#consumeReplies(session, channel).catch((error: unknown) => this.#lose(session, asError(error)));
        }
      },
      { noAck: true },
    );
  }

  #onReply(session: Session, message: ConsumeMessage): void {
    const headers = message.properties.headers as Record<string, unknown> | undefined;
    const ticket = headers?.['ticket'];
    if (typeof headers?.['clock'] === 'number') this.#clock = Math.max(this.#clock, headers['clock']) + 1;
    if (typeof ticket !== 'string') return;
    const pending = session.pending.get(ticket);
    if (!pending) return; // a late reply to a broadcast that already finished
    let body: unknown;
    try {
      body = JSON.parse(message.content.toString('utf8'));
    } catch {
      this.#logger.warn({ ticket }, 'pidbox reply is not JSON; ignored');
      return;
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) return;
    for (const [worker, value] of Object.entries(body)) pending.replies.push({ worker, value });
    if (pending.limit !== undefined && pending.replies.length >= pending.limit) {
      finishBroadcast(session, ticket);
    } else {
      armIdleTimer(session, ticket, pending);
    }
  }

  broadcast(request: ControlRequest, options: BroadcastOptions): Promise<ControlReply[]> {
    const session = this.#session;
    const channel = session?.control;
    if (this.#closed || !session || session.lost || !channel) {
      return Promise.reject(new BrokerUnavailableError());
    }
    const ticket = options.reply ? randomUUID() : undefined;
    // Key order as kombu's Mailbox._broadcast builds the dict (§B1).
    const body: Record<string, unknown> = {
      method: request.method,
      arguments: request.arguments,
      destination: request.destination,
      pattern: request.pattern ?? null,
      matcher: request.matcher ?? null,
    };
    if (ticket) {
      body['ticket'] = ticket;
      body['reply_to'] = { exchange: REPLY_EXCHANGE, routing_key: session.oid };
    }
    this.#clock += 1;
    // Typed explicitly: amqplib would send a clock of 128..32767 as a 16-bit int (table type
    // 's'), which py-amqp 5.1 reads as a short string; the worker then dies with a
    // UnicodeDecodeError on every command. Celery itself sends an int32 and a double.
    const headers = {
      clock: { '!': 'int', value: this.#clock },
      expires: { '!': 'double', value: options.timeoutMs > 0 ? Date.now() / 1000 + options.timeoutMs / 1000 : 0 },
    };

    let result: Promise<ControlReply[]> = Promise.resolve([]);
    if (ticket) {
      const limit = options.limit ?? (request.destination && request.destination.length > 0 ? request.destination.length : undefined);
      result = new Promise<ControlReply[]>((resolve) => {
        const pending: PendingBroadcast = { replies: [], limit: limit && limit > 0 ? limit : undefined, idleMs: options.timeoutMs, timer: undefined, resolve };
        session.pending.set(ticket, pending);
        armIdleTimer(session, ticket, pending);
      });
    }
    try {
      channel.publish(PIDBOX_EXCHANGE, '', Buffer.from(JSON.stringify(body), 'utf8'), {
        contentType: 'application/json',
        contentEncoding: 'utf-8',
        deliveryMode: 2,
        priority: 0,
        headers,
      });
    } catch (error) {
      // The channel died between the check above and the publish: nothing was sent.
      if (ticket) {
        const pending = session.pending.get(ticket);
        clearTimeout(pending?.timer);
        session.pending.delete(ticket);
      }
      return Promise.reject(new BrokerUnavailableError(`broker not connected: ${asError(error).message}`));
    }
    return result;
  }

  // ---------------------------------------------------------------------------------------------
  // Queue depths (§C1)

  async queueDepths(queues: readonly string[], timeoutMs: number): Promise<QueueDepth[]> {
    const results: QueueDepth[] = [];
    const session = this.#session;
    if (!session || session.lost) {
      return queues.map((name) => ({ name, messages: null, consumers: null, error: 'broker not connected' }));
    }
    const deadline = Date.now() + timeoutMs;
    // A passive declare of a missing queue closes its channel with 404, so checks run on a
    // disposable channel that is replaced after every such loss; the event and pidbox channels
    // never see it.
    let channel: Channel | undefined;
    try {
      for (const name of queues) {
        const remaining = deadline - Date.now();
        if (remaining <= 0) {
          results.push({ name, messages: null, consumers: null, error: `timed out after ${timeoutMs} ms` });
          continue;
        }
        try {
          channel ??= await withDeadline(openDisposableChannel(session.model), remaining, (late) => void late.close().catch(() => undefined));
          const ok = await withDeadline(channel.checkQueue(name), deadline - Date.now());
          results.push({ name, messages: ok.messageCount, consumers: ok.consumerCount });
        } catch (error) {
          const e = error as { code?: unknown; message?: string };
          if (e.code === 404) {
            results.push({ name, messages: 0, consumers: 0 });
          } else {
            results.push({ name, messages: null, consumers: null, error: e.message ?? String(error) });
          }
          // After a 404 or a timeout this channel is dead or stuck; the next queue gets a new one.
          const stale = channel;
          channel = undefined;
          stale?.close().catch(() => undefined);
        }
      }
    } finally {
      channel?.close().catch(() => undefined);
    }
    return results;
  }
}

/** One consumer on the event queue, with cheap batched acknowledgements. */
class EventSubscription {
  retired = false;
  #unacked = 0;
  #last: ConsumeMessage | undefined;
  #timer: NodeJS.Timeout | undefined;
  readonly #ackEvery: number;

  constructor(
    readonly channel: Channel,
    private readonly sink: EventSink,
    private readonly maxBytes: number,
    prefetch: number,
    private readonly logger: Logger,
  ) {
    // Acks must go out well before the prefetch window fills, or the broker stalls the stream.
    this.#ackEvery = prefetch > 0 ? Math.max(1, Math.min(500, Math.floor(prefetch / 4))) : 500;
  }

  deliver(message: ConsumeMessage): void {
    try {
      if (message.content.length > this.maxBytes) {
        this.sink.onDrop('oversize');
      } else {
        this.sink.onEvents({
          contentType: message.properties.contentType as string | undefined,
          contentEncoding: message.properties.contentEncoding as string | undefined,
          body: message.content,
          routingKey: message.fields.routingKey,
        });
      }
    } catch (error) {
      // A sink bug must not kill the channel (amqplib would) or stall acks; the message is spent.
      this.logger.error({ err: asError(error).message }, 'event sink threw; event discarded');
    }
    this.#last = message;
    if (++this.#unacked >= this.#ackEvery) this.flushAcks();
    else this.#timer ??= setTimeout(() => this.flushAcks(), ACK_FLUSH_MS);
  }

  /** Acks everything delivered so far with one `multiple` ack. */
  flushAcks(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const last = this.#last;
    this.#last = undefined;
    this.#unacked = 0;
    if (!last || this.retired) return;
    try {
      this.channel.ack(last, true);
    } catch {
      // The channel is already closed; the broker requeues or drops those messages itself.
    }
  }

  retire(): void {
    this.retired = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

function armIdleTimer(session: Session, ticket: string, pending: PendingBroadcast): void {
  clearTimeout(pending.timer);
  pending.timer = setTimeout(() => finishBroadcast(session, ticket), Math.max(0, pending.idleMs));
}

function finishBroadcast(session: Session, ticket: string): void {
  const pending = session.pending.get(ticket);
  if (!pending) return;
  session.pending.delete(ticket);
  clearTimeout(pending.timer);
  pending.resolve(pending.replies);
}

async function openDisposableChannel(model: ChannelModel): Promise<Channel> {
  const channel = await model.createChannel();
  // Without a listener the 404 of a passive declare is an unhandled 'error' and kills the process.
  channel.on('error', () => undefined);
  return channel;
}

/**
 * Races `promise` against `ms`. The loser is always handled, so a late rejection never becomes an
 * unhandled one; `onLate` receives a value that arrived after the deadline, for cleanup.
 */
async function withDeadline<T>(promise: Promise<T>, ms: number, onLate?: (value: T) => void): Promise<T> {
  let timedOut = false;
  let timer: NodeJS.Timeout | undefined;
  promise.then(
    (value) => {
      if (timedOut) onLate?.(value);
    },
    () => undefined,
  );
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          timedOut = true;
          reject(new Error(`timed out after ${Math.max(0, Math.round(ms))} ms`));
        }, Math.max(0, ms));
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Closes gracefully when the broker answers; on a half-open socket (where close-ok never comes)
 * the socket is destroyed after a grace period so close() always finishes.
 */
async function closeModel(model: ChannelModel): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const graceful = model.close().catch(() => undefined);
  const forced = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      // amqplib exposes no destroy(); its Connection keeps the socket as `stream`.
      (model.connection as unknown as { stream?: { destroy(): void } }).stream?.destroy();
      resolve();
    }, CLOSE_GRACE_MS);
  });
  await Promise.race([graceful, forced]);
  clearTimeout(timer);
}

/** amqplib reads the heartbeat from the URL query; an explicit setting wins over the URL's. */
function withHeartbeat(url: string, heartbeatSeconds: number): string {
  try {
    const parsed = new URL(url);
    parsed.searchParams.set('heartbeat', String(Math.max(0, Math.round(heartbeatSeconds))));
    return parsed.href;
  } catch {
    // amqplib reports an unusable URL itself, on every attempt, through the normal failure path.
    return url;
  }
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
