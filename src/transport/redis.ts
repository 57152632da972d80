import { Redis } from 'ioredis';
import type { Logger } from '../log.js';
import { asError } from './async.js';
import { ReconnectScheduler } from './reconnect.js';
import { redisClientOptions, type ConnectionRole, type RedisTransportSettings } from './redis/client-options.js';
import { RedisPidbox } from './redis/pidbox.js';
import { purgeQueueLists, readQueueDepths } from './redis/queue-depths.js';
import { ReadAhead } from './redis/read-ahead.js';
import { ReplyPool } from './redis/reply-pool.js';
import { RedisSession } from './redis/session.js';
import { decodeEnvelope, eventChannelPattern, eventChannelPrefix, type RedisLayout } from './redis/keys.js';
import { explainTlsError } from './tls.js';
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

export { redisClientOptions, type RedisTransportSettings } from './redis/client-options.js';
export type { RedisConnectionSettings, RedisDirectEndpoint, RedisSentinelEndpoint } from './redis/client-options.js';

/**
 * Celery's Redis broker as kombu 5.2 lays it out (docs/wire-protocol.md §A2, §B4, §C2, §E).
 * This class only wires its parts together (see src/transport/redis/):
 * - session.ts: the events connection (PSUBSCRIBE) and the commands connection (PUBLISH,
 *   bindings, LLEN, cleanup) of one connect attempt, with their PING health check;
 * - read-ahead.ts: whether an event is processed as it arrives or queued (bounded) so the socket
 *   keeps being read while processing is behind;
 * - reply-pool.ts + pidbox.ts: broadcasts, each collecting replies on a blocking connection of
 *   its own from a small bounded pool, and the cleanup of their reply queues;
 * - queue-depths.ts: LLEN over the priority lists; purge of them all in one MULTI.
 * A lost session is replaced by a single reconnect loop (../reconnect.ts) with fresh clients.
 * ioredis's own reconnect, offline queue and command replay are all switched off, so nothing is
 * ever sent late after an outage.
 */

const DEFAULT_MAX_CONCURRENT_BROADCASTS = 8;
const DEFAULT_MAX_BACKLOG_BYTES = 256 * 1024 * 1024;

export class RedisTransport implements BrokerTransport {
  readonly kind = 'redis' as const;

  readonly #settings: RedisTransportSettings;
  readonly #observer: TransportObserver;
  readonly #logger: Logger;
  readonly #layout: RedisLayout;
  readonly #eventPrefixBytes: number;
  readonly #reconnect: ReconnectScheduler;
  readonly #readAhead: ReadAhead;
  readonly #pool: ReplyPool;
  readonly #pidbox: RedisPidbox;

  #sink: EventSink | undefined;
  #session: RedisSession | undefined;
  #started = false;
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(settings: RedisTransportSettings, observer: TransportObserver, logger: Logger) {
    if ('sentinels' in settings && (settings.sentinels.length === 0 || !settings.masterName)) {
      throw new Error('Redis Sentinel needs at least one sentinel and broker_transport_options.master_name');
    }
    this.#settings = settings;
    this.#observer = observer;
    this.#logger = logger;
    this.#layout = { globalKeyprefix: settings.globalKeyprefix, db: settings.db, prioritySteps: settings.prioritySteps, sep: settings.sep };
    this.#eventPrefixBytes = Buffer.byteLength(eventChannelPrefix(this.#layout));
    this.#reconnect = new ReconnectScheduler(settings.reconnect, observer, () => this.#connect());
    this.#readAhead = new ReadAhead({
      maxBacklogBytes: settings.maxBacklogBytes ?? DEFAULT_MAX_BACKLOG_BYTES,
      now: () => performance.now(),
      defer: (task) => setImmediate(task),
      process: (channel, message) => this.#onEventMessage(channel, message),
      onBacklogFull: () => this.#sink?.onDrop('backlog_full'),
    });
    this.#pool = new ReplyPool(
      () => this.#newClient('replies'),
      settings.maxConcurrentBroadcasts ?? DEFAULT_MAX_CONCURRENT_BROADCASTS,
      settings.connectTimeoutMs,
    );
    this.#pidbox = new RedisPidbox(this.#layout, this.#pool, () => this.#session, logger);
  }

  start(sink: EventSink): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    this.#sink = sink;
    this.#connect();
  }

  isConnected(): boolean {
    return this.#session?.up === true;
  }

  #connect(): void {
    if (this.#closed) return;
    const session = new RedisSession(
      (role) => this.#newClient(role),
      {
        pattern: eventChannelPattern(this.#layout),
        healthCheckSeconds: this.#settings.healthCheckSeconds,
        connectTimeoutMs: this.#settings.connectTimeoutMs,
        readPacingMs: this.#settings.readPacingMs,
      },
      {
        onMessage: (channel, message) => this.#onArrival(channel, message),
        onUp: (up) => this.#up(up),
        onLost: (lost, error, wasUp) => this.#lost(lost, error, wasUp),
      },
    );
    this.#session = session;
    session.open();
  }

  #newClient(role: ConnectionRole): Redis {
    const client = new Redis(redisClientOptions(this.#settings, role));
    // Socket errors come back as a close (and a rejected command); the listener only keeps
    // ioredis from reporting them as unhandled.
    client.on('error', (error: Error) => this.#logger.debug({ err: error.message, role }, 'redis connection error'));
    return client;
  }

  #up(session: RedisSession): void {
    if (this.#closed) return;
    this.#reconnect.connected();
    this.#logger.info(
      { db: this.#settings.db, keyprefix: this.#settings.globalKeyprefix, tls: this.#settings.tls },
      'connected to Redis, subscribed to events',
    );
    this.#pidbox.retryCleanup(session);
    this.#observer.connected();
    try {
      this.#sink?.onSubscribed();
    } catch (error) {
      this.#logger.error({ err: asError(error).message }, 'event sink failed on subscribe');
    }
  }

  /** The session is over: its broadcasts end with what they have, and (unless closing) a new one is scheduled. */
  #lost(session: RedisSession, cause: Error, wasUp: boolean): void {
    this.#pool.drain();
    if (this.#session === session) this.#session = undefined;
    if (this.#closed) return;
    const error = explainTlsError(cause);
    this.#logger.warn({ err: error.message }, wasUp ? 'lost the Redis connection' : 'cannot connect to Redis');
    this.#observer.disconnected(error);
    this.#reconnect.schedule();
  }

  // -------------------------------------------------------------------------------------------
  // Events: the hot path, once per PUBLISH

  #onArrival(channel: Buffer, message: Buffer): void {
    if (message.length > this.#settings.maxMessageBytes) {
      this.#sink?.onDrop('oversize');
      return;
    }
    this.#readAhead.push(channel, message);
  }

  #onEventMessage(channel: Buffer, message: Buffer): void {
    const sink = this.#sink;
    if (!sink) return;
    try {
      const envelope = decodeEnvelope(message);
      if (typeof envelope === 'string') {
        sink.onDrop(envelope);
        return;
      }
      sink.onEvents({
        contentType: envelope.contentType,
        contentEncoding: envelope.contentEncoding,
        body: envelope.body,
        routingKey: channel.toString('utf8', this.#eventPrefixBytes),
      });
    } catch (error) {
      // A throwing sink must not unwind into ioredis's reply parser.
      this.#logger.error({ err: asError(error).message }, 'event sink failed');
    }
  }

  // -------------------------------------------------------------------------------------------
  // Pidbox and queue depths

  async broadcast(request: ControlRequest, options: BroadcastOptions): Promise<ControlReply[]> {
    const session = this.#session;
    if (!session?.up || this.#closed) throw new BrokerUnavailableError();
    return this.#pidbox.broadcast(session, request, options);
  }

  async queueDepths(queues: readonly string[], timeoutMs: number): Promise<QueueDepth[]> {
    if (queues.length === 0) return [];
    const session = this.#session;
    if (!session?.up) return queues.map((name) => ({ name, messages: null, consumers: null, error: 'broker not connected' }));
    return readQueueDepths(session.commands, this.#layout, queues, timeoutMs);
  }

  async purgeQueue(queue: string, timeoutMs: number): Promise<number> {
    const session = this.#session;
    if (!session?.up || this.#closed) throw new BrokerUnavailableError();
    return purgeQueueLists(session.commands, this.#layout, queue, timeoutMs);
  }

  // -------------------------------------------------------------------------------------------
  // Close

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    this.#readAhead.clear();
    this.#reconnect.stop();
    const session = this.#session;
    await this.#pidbox.abortAll();
    this.#pool.drain(new BrokerUnavailableError('transport closed'));
    if (!session) return;
    this.#session = undefined;
    await session.close();
  }
}
