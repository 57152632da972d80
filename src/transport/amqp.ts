import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import type { Channel, ChannelModel } from 'amqplib';
import type { Logger } from '../log.js';
import { closeModel, openConnection, withHeartbeat } from './amqp/connection.js';
import { declareEventQueue, EventSubscription } from './amqp/event-subscription.js';
import { openPidboxChannel, PendingReplies, publishRequest } from './amqp/pidbox.js';
import { checkQueueDepths, purgeQueueOn } from './amqp/queue-depths.js';
import { asError } from './async.js';
import { LamportClock } from './pidbox.js';
import { paceReads, type ReadPacing } from './read-pacing.js';
import { ReconnectScheduler } from './reconnect.js';
import { explainTlsError } from './tls.js';
import type { AmqpTransportSettings } from './amqp/settings.js';
import { BrokerUnavailableError, type BroadcastOptions, type BrokerTransport, type ControlReply } from './transport.js';
import type { ControlRequest, EventSink, QueueDepth, TransportObserver } from './transport.js';

export type { AmqpTransportSettings } from './amqp/settings.js';

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

const EVENT_EXCHANGE = 'celeryev';
/** How long a broadcast's replies are read without pacing (see broadcast). */
const REPLY_HURRY_MS = 100;

/** Everything that lives and dies with one AMQP connection. */
interface Session {
  readonly model: ChannelModel;
  /** Our pidbox identity on this connection: reply routing key and reply queue `<oid>.reply.celery.pidbox`. */
  readonly oid: string;
  control: Channel | undefined;
  events: EventSubscription | undefined;
  /** Batched socket reads once the session is up (./read-pacing.ts); queue checks read at once. */
  reads: ReadPacing | undefined;
  readonly pending: PendingReplies;
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
  readonly #reconnect: ReconnectScheduler;
  #connecting: Promise<void> | undefined;
  #closed = false;
  /** Lamport clock for pidbox request headers, as kombu's Mailbox keeps one. */
  readonly #clock = new LamportClock();

  constructor(settings: AmqpTransportSettings, observer: TransportObserver, logger: Logger) {
    this.#settings = settings;
    this.#observer = observer;
    this.#logger = logger;
    this.#connectUrl = withHeartbeat(settings.url, settings.heartbeatSeconds);
    this.#reconnect = new ReconnectScheduler(settings.reconnect, observer, () => this.#runConnect());
  }

  start(sink: EventSink): void {
    if (this.#sink || this.#closed) return;
    this.#sink = sink;
    this.#runConnect();
  }

  isConnected(): boolean {
    return this.#session !== undefined;
  }

  /** Event deliveries the current subscription read through the lean path (./amqp/delivery-frames.ts). */
  get leanDeliveries(): number {
    return this.#session?.events?.leanDeliveries ?? 0;
  }

  // ---------------------------------------------------------------------------------------------
  // Connection lifecycle

  async #connect(): Promise<void> {
    if (this.#closed) return;
    let model: ChannelModel;
    try {
      model = await openConnection({
        url: this.#connectUrl,
        connectTimeoutMs: this.#settings.connectTimeoutMs,
        ...(this.#settings.tls ? { tls: this.#settings.tls } : {}),
      });
    } catch (error) {
      if (!this.#closed) this.#failed(asError(error));
      return;
    }
    if (this.#closed) {
      model.on('error', () => undefined);
      await closeModel(model);
      return;
    }
    const session: Session = {
      model,
      oid: randomUUID(),
      control: undefined,
      events: undefined,
      reads: undefined,
      pending: new PendingReplies(),
      lost: false,
      cause: undefined,
    };
    model.on('error', (error: Error) => {
      session.cause ??= error;
      this.#logger.warn({ err: error.message }, 'AMQP connection error');
    });
    model.on('close', (error?: Error) => this.#lose(session, error ?? new Error('connection closed by the broker')));
    model.on('blocked', (reason: string) => this.#logger.warn({ reason }, 'broker blocked the connection'));
    model.on('unblocked', () => this.#logger.info('broker unblocked the connection'));
    this.#opening = session;
    try {
      session.control = await openPidboxChannel(session, {
        logger: this.#logger,
        clock: this.#clock,
        channelClosed: () => this.#loseAfterChannel(session, 'pidbox channel closed'),
        failed: (error) => this.#lose(session, error),
      });
      session.events = await this.#subscribeEvents(session);
    } catch (error) {
      this.#lose(session, asError(error));
      return;
    } finally {
      if (this.#opening === session) this.#opening = undefined;
    }
    if (session.lost) return;
    if (this.#closed) {
      this.#release(session).catch((error: unknown) =>
        this.#logger.error({ err: asError(error).message }, 'releasing a RabbitMQ session failed'),
      );
      return;
    }
    this.#session = session;
    // amqplib keeps its socket as the connection's `stream` (a net.Socket, or a TLSSocket for amqps://).
    const socket = (session.model.connection as unknown as { stream?: Socket }).stream;
    if (socket) session.reads = paceReads(socket, this.#settings.readPacingMs);
    this.#reconnect.connected();
    this.#logger.info({ queue: this.#settings.eventQueue.name }, 'connected to RabbitMQ, consuming events');
    this.#observer.connected();
    this.#notifySubscribed(session);
  }

  /** A connection attempt failed before it was usable. */
  #failed(cause: Error): void {
    const error = explainTlsError(cause);
    this.#logger.warn({ err: error.message }, 'cannot connect to RabbitMQ');
    this.#observer.disconnected(error);
    this.#reconnect.schedule();
  }

  /** The connection (or one of its long-lived channels) is gone: drop it all and start over. */
  #lose(session: Session, fallback: Error): void {
    if (session.lost) return;
    session.lost = true;
    const error = session.cause ?? fallback;
    const wasConnected = this.#session === session;
    if (wasConnected) this.#session = undefined;
    this.#release(session).catch((error: unknown) =>
      this.#logger.error({ err: asError(error).message }, 'releasing a RabbitMQ session failed'),
    );
    if (this.#closed) return;
    this.#logger.warn({ err: error.message, wasConnected }, 'lost the RabbitMQ connection');
    this.#observer.disconnected(error);
    this.#reconnect.schedule();
  }

  /**
   * A long-lived channel closed. When the whole connection is going, amqplib closes the channels
   * first and emits the connection's 'close' (with the real reason, e.g. CONNECTION_FORCED) in the
   * same tick, so the decision waits a microtask to report that reason instead.
   */
  #loseAfterChannel(session: Session, what: string): void {
    queueMicrotask(() => this.#lose(session, new Error(what)));
  }

  /** Runs one connection attempt, remembered so close() can wait for it to wind down. */
  #runConnect(): void {
    const attempt = this.#connect().catch((error: unknown) => {
      // Only a throwing observer gets here; the loop must survive it or it would stop for good.
      this.#logger.error({ err: asError(error).message }, 'connect attempt failed unexpectedly');
      if (!this.#session) this.#reconnect.schedule();
    });
    this.#connecting = attempt;
    // `attempt` never rejects (the catch above): clearing it on settlement is all that is left.
    const settled = () => (this.#connecting === attempt ? (this.#connecting = undefined) : undefined);
    attempt.then(settled, settled);
  }

  /** Settles what depends on the session and closes its connection; never rejects. */
  async #release(session: Session): Promise<void> {
    session.lost = true;
    session.reads?.stop();
    session.events?.retire();
    session.pending.finishAll();
    await closeModel(session.model);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#reconnect.stop();
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
    const queue = this.#settings.eventQueue;
    const channel = await session.model.createChannel();
    const subscription = new EventSubscription(channel, this.#sink!, this.#settings.maxMessageBytes, queue.prefetch, this.#logger);
    channel.on('error', (error: Error) => {
      if (subscription.retired) return; // a replaced channel's last words are no loss
      session.cause ??= error;
      this.#logger.warn({ err: error.message }, 'event channel error');
    });
    channel.on('close', () => {
      if (!subscription.retired) this.#loseAfterChannel(session, 'event channel closed');
    });
    await declareEventQueue(channel, EVENT_EXCHANGE, queue);
    const { consumerTag } = await channel.consume(
      queue.name,
      (message) => {
        if (message) subscription.deliverMessage(message);
        else
          this.#onEventConsumerCancelled(session, subscription).catch((error: unknown) =>
            this.#logger.error({ err: asError(error).message }, 're-declaring the event queue failed'),
          );
      },
      { noAck: false },
    );
    // Installed first: an optional call `leanDelivery?.(…)` would skip its argument when absent.
    const lean = subscription.takeDeliveriesFrom(session.model, consumerTag);
    this.#observer.leanDelivery?.(lean);
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

  broadcast(request: ControlRequest, options: BroadcastOptions): Promise<ControlReply[]> {
    const session = this.#session;
    const channel = session?.control;
    if (this.#closed || !session || session.lost || !channel) {
      return Promise.reject(new BrokerUnavailableError());
    }
    const reply = options.reply ? { ticket: randomUUID(), oid: session.oid } : undefined;
    try {
      const replies = publishRequest(channel, session.pending, this.#clock, request, options, reply);
      // Live workers answer within milliseconds: read those at once. Later replies (a worker
      // that is slow or gone) come at the pacing rhythm, up to read_pacing_ms late, rather than
      // unpacing the whole event stream for each unanswered inspection.
      return reply ? this.#hurried(session, replies, REPLY_HURRY_MS) : replies;
    } catch (error) {
      // The channel died between the check above and the publish: nothing was sent.
      return Promise.reject(new BrokerUnavailableError(`broker not connected: ${asError(error).message}`));
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Queue depths (§C1)

  async queueDepths(queues: readonly string[], timeoutMs: number): Promise<QueueDepth[]> {
    const session = this.#session;
    if (!session || session.lost) {
      return queues.map((name) => ({ name, messages: null, consumers: null, error: 'broker not connected' }));
    }
    return this.#hurried(session, checkQueueDepths(session.model, queues, timeoutMs), timeoutMs);
  }

  async purgeQueue(queue: string, timeoutMs: number): Promise<number> {
    if (!this.#session || this.#session.lost) throw new BrokerUnavailableError();
    return this.#hurried(this.#session, purgeQueueOn(this.#session.model, queue, timeoutMs), timeoutMs);
  }

  /** Answers are awaited on this socket: read it without pauses until `work` settles, at most `forMs`. */
  #hurried<T>(session: Session, work: Promise<T>, forMs: number): Promise<T> {
    const release = session.reads?.hurry(forMs);
    return release ? work.finally(release) : work;
  }
}
