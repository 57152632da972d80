import { randomUUID } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '../log.js';
import { backoffDelay } from './backoff.js';
import {
  decodeEnvelope,
  decodePidboxReply,
  encodePidboxRequest,
  eventChannelPattern,
  eventChannelPrefix,
  pidboxChannel,
  priorityKeys,
  replyBindingKey,
  replyBindingMember,
  replyKeys,
  type RedisLayout,
} from './redis-keys.js';
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
 * Celery's Redis broker as kombu 5.2 lays it out (docs/wire-protocol.md §A2, §B4, §C2, §E).
 *
 * Connections, each with one job so none can stall another:
 * - events: PSUBSCRIBE on `<prefix>/<db>.celeryev/*`, bodies kept as Buffers;
 * - commands: pidbox PUBLISH, reply bindings, LLEN pipelines, cleanup;
 * - replies: a small bounded pool of connections for the BRPOP that collects pidbox replies,
 *   one broadcast per connection at a time (a blocking command holds its whole connection).
 *
 * The events and commands connections form one session: losing either (socket close, a PING
 * left unanswered on a half-open socket) tears the session down and a single reconnect loop
 * builds a new one with fresh clients. ioredis's own reconnect, offline queue and command
 * replay are all switched off, so nothing is ever sent late after an outage.
 */

export interface RedisDirectEndpoint {
  readonly host: string;
  readonly port: number;
}

export interface RedisSentinelEndpoint {
  readonly sentinels: ReadonlyArray<{ readonly host: string; readonly port: number }>;
  /** kombu's `master_name` transport option. */
  readonly masterName: string;
}

export interface RedisConnectionSettings {
  readonly db: number;
  readonly tls: boolean;
  readonly username?: string;
  /** Already revealed from its Secret by the caller; never logged here. */
  readonly password?: string;
  /** kombu `global_keyprefix`, `priority_steps` and `sep`: must match the workers' options. */
  readonly globalKeyprefix: string;
  readonly prioritySteps: readonly number[];
  readonly sep: string;
  readonly maxMessageBytes: number;
  /**
   * Messages read off the socket but not yet processed may hold this many bytes; beyond it new
   * ones are dropped and counted ('backlog_full'). Default 256 MiB.
   */
  readonly maxBacklogBytes?: number;
  /** A connection with no traffic and no PING answer for this long is reconnected. */
  readonly healthCheckSeconds: number;
  readonly reconnect: { readonly initialMs: number; readonly maxMs: number };
  readonly connectTimeoutMs: number;
  /** CLIENT SETNAME base, `<name>-events` etc., so operators can find us in CLIENT LIST. */
  readonly clientName?: string;
  /** Broadcasts collecting replies at the same time (one blocking connection each); default 8. */
  readonly maxConcurrentBroadcasts?: number;
}

/** A direct node or a Sentinel group, flat beside the rest (as src/transport/index.ts builds it). */
export type RedisTransportSettings = (RedisDirectEndpoint | RedisSentinelEndpoint) & RedisConnectionSettings;

/** How long one slice of event processing may hold the event loop before the socket is read again. */
const DRAIN_SLICE_MS = 5;
/**
 * Inline processing switches to read-ahead when it holds one turn of the event loop longer than
 * TURN_BUDGET_MS (one read brought more than we process quickly), or takes more than
 * BUSY_FRACTION of a BUSY_WINDOW_MS window (many small reads, back to back). Until then, at most
 * ~100 ms of arrivals wait in the socket and in Redis's buffer (about 10 MB at the fastest rate
 * measured, far under its 32 MB limit); below it, a burst costs no extra memory.
 */
const TURN_BUDGET_MS = 50;
const BUSY_WINDOW_MS = 100;
const BUSY_FRACTION = 0.8;

type Role = 'events' | 'commands' | 'replies';

const DEFAULT_CLIENT_NAME = 'celery-autopilot';
const DEFAULT_MAX_CONCURRENT_BROADCASTS = 8;
/** Idle reply connections kept warm; more are opened on demand and closed after use. */
const IDLE_REPLY_CONNECTIONS = 2;
/** How much later than a BRPOP's own timeout its answer may come before the connection is judged dead. */
const BRPOP_GRACE_MS = 1_000;
/** Reply queues whose cleanup failed, remembered for the next session (beyond this, left behind). */
const MAX_ORPHANED_REPLY_QUEUES = 1_000;
/** Upper bound on a graceful QUIT before the socket is simply destroyed. */
const CLOSE_GRACE_MS = 1_000;

/** ioredis options for one connection: every automatic recovery is off, the transport owns it. */
export function redisClientOptions(settings: RedisTransportSettings, role: Role): RedisOptions {
  const common: RedisOptions = {
    db: settings.db,
    connectionName: `${settings.clientName ?? DEFAULT_CLIENT_NAME}-${role}`,
    lazyConnect: true,
    connectTimeout: settings.connectTimeoutMs,
    // A command issued while disconnected fails at once instead of waiting in a queue to be sent
    // late; commands in flight when the socket dies are failed, not replayed on the next socket.
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    autoResubscribe: false,
    retryStrategy: () => null,
    disableClientInfo: true,
    ...(settings.username !== undefined ? { username: settings.username } : {}),
    ...(settings.password !== undefined ? { password: settings.password } : {}),
    ...(settings.tls ? { tls: {} } : {}),
  };
  if ('sentinels' in settings) {
    return {
      ...common,
      sentinels: settings.sentinels.map((s) => ({ host: s.host, port: s.port })),
      name: settings.masterName,
      role: 'master',
      // One pass over the sentinels per attempt; the transport's own backoff paces the retries.
      sentinelRetryStrategy: () => null,
      // The ready check's INFO is what tells ioredis the node it reached is really the master.
      enableReadyCheck: true,
      // On +switch-master the old master's sockets are dropped, so the session reconnects to the new one.
      failoverDetector: true,
    };
  }
  return {
    ...common,
    host: settings.host,
    port: settings.port,
    // The ready check sends INFO, which a Celery ACL user often may not run; a server still
    // loading its data set answers the PSUBSCRIBE with an error and the session simply retries.
    enableReadyCheck: false,
  };
}

/** The events and commands connections of one connect attempt. */
interface Session {
  readonly events: Redis;
  readonly commands: Redis;
  up: boolean;
  dead: boolean;
  /** The last socket error, which says more than the close that follows it. */
  lastError: Error | undefined;
  connectTimer: NodeJS.Timeout | undefined;
  healthTimer: NodeJS.Timeout | undefined;
  /** A PING sent by the health check and not answered yet, per connection. */
  readonly probes: Record<'events' | 'commands', { outstanding: boolean; receivedAtSend: number }>;
  /** Blocking connections opened for this session, idle ones first in line for reuse. */
  readonly idleReplyClients: Redis[];
  readonly busyReplyClients: Set<Redis>;
}

/** The reply binding member and lists of one broadcast. */
interface ReplyQueue {
  readonly member: string;
  readonly keys: string[];
}

/** One broadcast collecting replies; setting `aborted` (and dropping its client) ends it with what it has. */
interface PendingBroadcast {
  aborted: boolean;
  client: Redis | undefined;
  readonly done: Promise<unknown>;
}

export class RedisTransport implements BrokerTransport {
  readonly kind = 'redis' as const;

  readonly #settings: RedisTransportSettings;
  readonly #observer: TransportObserver;
  readonly #logger: Logger;
  readonly #layout: RedisLayout;
  readonly #eventPrefixBytes: number;

  #sink: EventSink | undefined;
  #session: Session | undefined;
  #started = false;
  #closed = false;
  #closing: Promise<void> | undefined;
  #attempt = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  /** Event messages received, ever: traffic that proves the subscriber socket is alive. */
  #received = 0;
  /** Channel and message pairs not processed yet (flat: [channel, message, channel, ...]). */
  #backlog: Buffer[] = [];
  #backlogHead = 0;
  #backlogBytes = 0;
  #draining = false;
  /** Queue messages as they arrive (processing fell behind) rather than process them inline. */
  #readAhead = false;
  #busyWindowStart = 0;
  #busyMs = 0;
  /** Inline processing time in the current event-loop turn. */
  #turnMs = 0;
  #turnOpen = false;
  readonly #endTurn = (): void => {
    this.#turnOpen = false;
  };
  /** kombu's Lamport clock for pidbox requests, advanced by the workers' reply clocks. */
  #clock = 0;
  #replyClientsInUse = 0;
  #replyWaiters: Array<{ resolve: (client: Redis) => void; reject: (error: Error) => void }> = [];
  readonly #pending = new Set<PendingBroadcast>();
  #orphans: ReplyQueue[] = [];
  /** Redis before 6.0 takes whole seconds only for BRPOP; switched on after the first refusal. */
  #integerBlockingTimeouts = false;

  constructor(settings: RedisTransportSettings, observer: TransportObserver, logger: Logger) {
    if ('sentinels' in settings && (settings.sentinels.length === 0 || !settings.masterName)) {
      throw new Error('Redis Sentinel needs at least one sentinel and broker_transport_options.master_name');
    }
    this.#settings = settings;
    this.#observer = observer;
    this.#logger = logger;
    this.#layout = {
      globalKeyprefix: settings.globalKeyprefix,
      db: settings.db,
      prioritySteps: settings.prioritySteps,
      sep: settings.sep,
    };
    this.#eventPrefixBytes = Buffer.byteLength(eventChannelPrefix(this.#layout));
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

  // -------------------------------------------------------------------------------------------
  // Session lifecycle

  #connect(): void {
    if (this.#closed) return;
    const session: Session = {
      events: this.#newClient('events'),
      commands: this.#newClient('commands'),
      up: false,
      dead: false,
      lastError: undefined,
      connectTimer: undefined,
      healthTimer: undefined,
      probes: { events: { outstanding: false, receivedAtSend: 0 }, commands: { outstanding: false, receivedAtSend: 0 } },
      idleReplyClients: [],
      busyReplyClients: new Set(),
    };
    this.#session = session;
    for (const client of [session.events, session.commands]) {
      client.on('error', (error: Error) => (session.lastError = error));
      client.on('close', () => this.#lose(session, session.lastError ?? new Error('connection to Redis closed')));
    }
    // Bound to the session: a late message from a torn-down subscriber must not be counted.
    session.events.on('pmessageBuffer', (_pattern: string, channel: Buffer, message: Buffer) => {
      if (!session.dead) this.#enqueue(channel, message);
    });
    // ioredis's connectTimeout covers the TCP connect only; this also covers a server (or a
    // proxy) that accepts the socket and then never answers.
    session.connectTimer = setTimeout(
      () => this.#lose(session, new Error(`connect timed out after ${this.#settings.connectTimeoutMs} ms`)),
      this.#settings.connectTimeoutMs,
    );
    const pattern = eventChannelPattern(this.#layout);
    Promise.all([session.events.connect(), session.commands.connect()])
      .then(() => session.events.psubscribe(pattern))
      .then(
        () => this.#up(session),
        (error: unknown) => this.#lose(session, asError(error)),
      );
  }

  #newClient(role: Role): Redis {
    const client = new Redis(redisClientOptions(this.#settings, role));
    // Socket errors come back as a close (and a rejected command); the listener only keeps
    // ioredis from reporting them as unhandled.
    client.on('error', (error: Error) => this.#logger.debug({ err: error.message, role }, 'redis connection error'));
    return client;
  }

  #up(session: Session): void {
    if (session.dead || this.#closed) return;
    clearTimeout(session.connectTimer);
    session.connectTimer = undefined;
    session.up = true;
    this.#attempt = 0;
    const interval = this.#settings.healthCheckSeconds * 1000;
    session.healthTimer = setInterval(() => this.#checkHealth(session), interval);
    session.healthTimer.unref();
    this.#logger.info({ db: this.#settings.db, keyprefix: this.#settings.globalKeyprefix }, 'connected to Redis, subscribed to events');
    for (const orphan of this.#orphans.splice(0)) {
      this.#removeReplyQueue(session, orphan).catch((error: unknown) => this.#logger.error({ err: asError(error).message }, 'orphaned reply queue cleanup failed'));
    }
    this.#observer.connected();
    try {
      this.#sink?.onSubscribed();
    } catch (error) {
      this.#logger.error({ err: asError(error).message }, 'event sink failed on subscribe');
    }
  }

  /**
   * Every interval each connection gets a PING (allowed in subscribe mode). A PING still
   * unanswered one interval later means a dead socket, unless events kept arriving meanwhile:
   * a subscriber working through a burst answers late but is plainly alive.
   */
  #checkHealth(session: Session): void {
    if (session.dead) return;
    for (const role of ['events', 'commands'] as const) {
      const probe = session.probes[role];
      if (probe.outstanding) {
        if (role === 'events' && this.#received !== probe.receivedAtSend) {
          probe.receivedAtSend = this.#received;
          continue;
        }
        this.#lose(session, new Error(`no answer to PING on the ${role} connection within ${this.#settings.healthCheckSeconds} s`));
        return;
      }
      probe.outstanding = true;
      probe.receivedAtSend = this.#received;
      const client = role === 'events' ? session.events : session.commands;
      client.ping().then(
        () => {
          probe.outstanding = false;
        },
        (error: unknown) => this.#lose(session, asError(error)),
      );
    }
  }

  /** Tears a session down (once) and, unless closing, schedules the next attempt. */
  #lose(session: Session, error: Error): void {
    if (session.dead) return;
    const wasUp = session.up;
    this.#retire(session);
    if (this.#session === session) this.#session = undefined;
    if (this.#closed) return;
    if (wasUp) this.#logger.warn({ err: error.message }, 'lost the Redis connection');
    else this.#logger.warn({ err: error.message }, 'cannot connect to Redis');
    this.#observer.disconnected(error);
    this.#scheduleReconnect();
  }

  /** Marks the session dead and drops its sockets; broadcasts on it end with what they have. */
  #retire(session: Session): void {
    session.dead = true;
    session.up = false;
    clearTimeout(session.connectTimer);
    clearInterval(session.healthTimer);
    session.events.disconnect();
    session.commands.disconnect();
    for (const client of session.idleReplyClients.splice(0)) client.disconnect();
    for (const client of session.busyReplyClients) client.disconnect();
    for (const waiter of this.#replyWaiters.splice(0)) waiter.reject(new BrokerUnavailableError());
  }

  #scheduleReconnect(): void {
    if (this.#closed || this.#retryTimer) return;
    this.#attempt += 1;
    const delay = backoffDelay(this.#attempt, this.#settings.reconnect.initialMs, this.#settings.reconnect.maxMs);
    this.#observer.reconnecting(this.#attempt, delay);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#connect();
    }, delay);
  }

  // -------------------------------------------------------------------------------------------
  // Events: the hot path, once per PUBLISH

  /**
   * Redis PUB/SUB does not wait for a slow subscriber: past its output-buffer limit (32 MB by
   * default) it closes the connection and everything published meanwhile is lost. So reading the
   * socket must never wait for processing once processing falls behind. While it keeps up,
   * messages are processed as they arrive (no extra memory). When processing holds the loop too
   * long (see TURN_BUDGET_MS), messages are queued as they arrive instead and processed in
   * short slices with setImmediate in between, which lets the loop read the socket again between
   * slices: a burst waits in our memory (bounded) rather than in Redis's. Once the queue is
   * empty, processing goes back to inline.
   */
  #enqueue(channel: Buffer, message: Buffer): void {
    this.#received += 1;
    if (message.length > this.#settings.maxMessageBytes) {
      this.#sink?.onDrop('oversize');
      return;
    }
    if (!this.#readAhead) {
      const start = performance.now();
      if (start - this.#busyWindowStart > BUSY_WINDOW_MS) {
        this.#busyWindowStart = start;
        this.#busyMs = 0;
      }
      if (!this.#turnOpen) {
        // The turn ends when the loop gets back to its check phase.
        this.#turnOpen = true;
        this.#turnMs = 0;
        setImmediate(this.#endTurn);
      }
      this.#onEventMessage(channel, message);
      const spent = performance.now() - start;
      this.#busyMs += spent;
      this.#turnMs += spent;
      if (this.#turnMs > TURN_BUDGET_MS || this.#busyMs > BUSY_WINDOW_MS * BUSY_FRACTION) this.#readAhead = true;
      return;
    }
    if (this.#backlogBytes + message.length > (this.#settings.maxBacklogBytes ?? 256 * 1024 * 1024)) {
      this.#sink?.onDrop('backlog_full');
      return;
    }
    this.#backlog.push(channel, message);
    this.#backlogBytes += message.length;
    if (!this.#draining) {
      this.#draining = true;
      setImmediate(this.#drain);
    }
  }

  readonly #drain = (): void => {
    const deadline = performance.now() + DRAIN_SLICE_MS;
    const backlog = this.#backlog;
    let i = this.#backlogHead;
    while (i < backlog.length) {
      const channel = backlog[i]!;
      const message = backlog[i + 1]!;
      i += 2;
      this.#backlogBytes -= message.length;
      this.#onEventMessage(channel, message);
      // Check the clock every 64 messages: cheap, and a slice stays a few milliseconds.
      if ((i & 127) === 0 && performance.now() > deadline) break;
    }
    if (i >= backlog.length) {
      this.#backlog = [];
      this.#backlogHead = 0;
      this.#draining = false;
      this.#readAhead = false; // caught up
      this.#busyMs = 0;
    } else {
      this.#backlogHead = i;
      if (i > 65_536) {
        this.#backlog = backlog.slice(i);
        this.#backlogHead = 0;
      }
      setImmediate(this.#drain);
    }
  };

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
  // Pidbox

  async broadcast(request: ControlRequest, options: BroadcastOptions): Promise<ControlReply[]> {
    const session = this.#session;
    if (!session?.up || this.#closed) throw new BrokerUnavailableError();
    const clock = ++this.#clock;
    const expires = options.timeoutMs > 0 ? Date.now() / 1000 + options.timeoutMs / 1000 : 0;
    const base = {
      method: request.method,
      arguments: request.arguments,
      destination: request.destination,
      pattern: request.pattern ?? null,
      matcher: request.matcher ?? null,
      clock,
      expires,
      deliveryTag: randomUUID(),
    };
    const channel = pidboxChannel(this.#layout);

    if (!options.reply) {
      await this.#onCommands(session, (c) => c.publish(channel, encodePidboxRequest(base)));
      return [];
    }

    const oid = randomUUID();
    const ticket = randomUUID();
    const limit = options.limit !== undefined && options.limit > 0 ? options.limit : request.destination?.length || undefined;
    const client = await this.#acquireReplyClient(session);
    let settle!: (value: unknown) => void;
    const pending: PendingBroadcast = { aborted: false, client, done: new Promise((resolve) => (settle = resolve)) };
    this.#pending.add(pending);
    const member = replyBindingMember(this.#layout, oid);
    const keys = replyKeys(this.#layout, oid);
    try {
      // The worker routes its reply through this binding: it must exist before the request does.
      await this.#onCommands(session, (c) =>
        c
          .pipeline()
          .sadd(replyBindingKey(this.#layout), member)
          .publish(channel, encodePidboxRequest({ ...base, reply: { ticket, oid } }))
          .exec()
          .then(throwOnPipelineError),
      );
      return await this.#collect(pending, client, keys, ticket, limit, options.timeoutMs);
    } finally {
      this.#pending.delete(pending);
      this.#releaseReplyClient(session, client, pending.aborted);
      // Never rejects (it defers what fails to the orphan list), so both outcomes settle alike.
      const settled = () => settle(undefined);
      this.#removeReplyQueue(session, { member, keys }).then(settled, settled);
    }
  }

  /**
   * kombu's `queue_delete` of the reply queue: SREM the binding, DEL the lists. On a dead
   * connection it is retried once the next session is up, so no binding is left behind for
   * workers to route stale replies through.
   */
  async #removeReplyQueue(session: Session, queue: ReplyQueue): Promise<void> {
    try {
      const results = await session.commands.pipeline().srem(replyBindingKey(this.#layout), queue.member).del(...queue.keys).exec();
      throwOnPipelineError(results);
    } catch (error) {
      this.#logger.debug({ err: asError(error).message }, 'pidbox reply queue cleanup deferred');
      const current = this.#session;
      if (current?.up && current !== session) await this.#removeReplyQueue(current, queue);
      else if (this.#orphans.length < MAX_ORPHANED_REPLY_QUEUES) this.#orphans.push(queue);
    }
  }

  /**
   * kombu's `_collect`: the timeout is an idle timeout, restarted by every reply that answers
   * our ticket. Replies to another ticket on the same list (none, with one oid per broadcast)
   * are skipped.
   */
  async #collect(
    pending: PendingBroadcast,
    client: Redis,
    keys: string[],
    ticket: string,
    limit: number | undefined,
    idleMs: number,
  ): Promise<ControlReply[]> {
    const replies: ControlReply[] = [];
    let deadline = Date.now() + idleMs;
    while (!pending.aborted && (limit === undefined || replies.length < limit)) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      let popped: [string, Buffer] | null;
      try {
        popped = await this.#brpop(pending, client, keys, remaining);
      } catch (error) {
        if (!pending.aborted) this.#logger.warn({ err: asError(error).message }, 'pidbox reply collection cut short');
        pending.aborted = true;
        break;
      }
      if (popped === null) break;
      const reply = decodePidboxReply(popped[1]);
      if (!reply) {
        this.#logger.debug('skipping a pidbox reply that is not a kombu envelope with an object body');
        continue;
      }
      if (reply.clock !== undefined) this.#clock = Math.max(this.#clock, reply.clock);
      if (reply.ticket !== ticket) continue;
      replies.push(...reply.replies);
      deadline = Date.now() + idleMs;
    }
    return replies;
  }

  /** One BRPOP, guarded by a local timer: a frozen socket must not hold a broadcast forever. */
  async #brpop(pending: PendingBroadcast, client: Redis, keys: string[], remainingMs: number): Promise<[string, Buffer] | null> {
    const timeout = this.#integerBlockingTimeouts ? String(Math.max(1, Math.ceil(remainingMs / 1000))) : (Math.max(remainingMs, 1) / 1000).toFixed(3);
    const guard = setTimeout(() => {
      pending.aborted = true;
      client.disconnect();
    }, remainingMs + BRPOP_GRACE_MS);
    try {
      const result = await client.brpopBuffer(...keys, timeout);
      return result ? [result[0].toString('utf8'), result[1]] : null;
    } catch (error) {
      if (!this.#integerBlockingTimeouts && /timeout is not a float|timeout is not an integer/i.test(asError(error).message)) {
        this.#integerBlockingTimeouts = true;
        return this.#brpop(pending, client, keys, remainingMs);
      }
      throw error;
    } finally {
      clearTimeout(guard);
    }
  }

  /** A ready blocking connection for one broadcast; waits while the bound is reached. */
  async #acquireReplyClient(session: Session): Promise<Redis> {
    const max = this.#settings.maxConcurrentBroadcasts ?? DEFAULT_MAX_CONCURRENT_BROADCASTS;
    if (this.#replyClientsInUse >= max) {
      const client = await new Promise<Redis>((resolve, reject) => this.#replyWaiters.push({ resolve, reject }));
      session.busyReplyClients.add(client);
      return client;
    }
    this.#replyClientsInUse += 1;
    while (session.idleReplyClients.length > 0) {
      const idle = session.idleReplyClients.pop()!;
      if (idle.status === 'ready') {
        session.busyReplyClients.add(idle);
        return idle;
      }
      idle.disconnect();
    }
    const client = this.#newClient('replies');
    session.busyReplyClients.add(client);
    try {
      await withTimeout(client.connect(), this.#settings.connectTimeoutMs, 'connecting the pidbox reply connection');
    } catch (error) {
      session.busyReplyClients.delete(client);
      client.disconnect();
      this.#replyClientsInUse -= 1;
      throw new BrokerUnavailableError(`cannot open a pidbox reply connection: ${asError(error).message}`);
    }
    if (session.dead) {
      session.busyReplyClients.delete(client);
      client.disconnect();
      this.#replyClientsInUse -= 1;
      throw new BrokerUnavailableError();
    }
    return client;
  }

  #releaseReplyClient(session: Session, client: Redis, broken: boolean): void {
    session.busyReplyClients.delete(client);
    const usable = !broken && !session.dead && client.status === 'ready';
    const waiter = usable ? this.#replyWaiters.shift() : undefined;
    if (waiter) {
      waiter.resolve(client);
      return;
    }
    this.#replyClientsInUse -= 1;
    if (!usable) {
      client.disconnect();
      // A slot freed by a broken connection lets a waiter open a fresh one.
      const next = this.#replyWaiters.shift();
      if (next) this.#acquireReplyClient(session).then(next.resolve, next.reject);
      return;
    }
    if (session.idleReplyClients.length < IDLE_REPLY_CONNECTIONS) session.idleReplyClients.push(client);
    else client.disconnect();
  }

  /** Runs a command on the commands connection, failing fast (and reconnecting) if it hangs. */
  async #onCommands<T>(session: Session, run: (client: Redis) => Promise<T>): Promise<T> {
    try {
      return await withTimeout(run(session.commands), this.#settings.connectTimeoutMs, 'pidbox publish');
    } catch (error) {
      const failure = asError(error);
      if (failure instanceof DeadlineError) this.#lose(session, failure);
      throw new BrokerUnavailableError(`pidbox publish failed: ${failure.message}`);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Queue depths

  async queueDepths(queues: readonly string[], timeoutMs: number): Promise<QueueDepth[]> {
    if (queues.length === 0) return [];
    const session = this.#session;
    const unreadable = (error: string): QueueDepth[] => queues.map((name) => ({ name, messages: null, consumers: null, error }));
    if (!session?.up) return unreadable('broker not connected');
    const keysPerQueue = queues.map((queue) => priorityKeys(this.#layout, queue));
    const pipeline = session.commands.pipeline();
    for (const keys of keysPerQueue) for (const key of keys) pipeline.llen(key);
    let results: Array<[Error | null, unknown]> | null;
    try {
      results = await withTimeout(pipeline.exec(), timeoutMs, 'reading queue lengths');
    } catch (error) {
      return unreadable(asError(error).message);
    }
    if (!results) return unreadable('queue length pipeline aborted');
    let index = 0;
    return queues.map((name, i) => {
      let messages = 0;
      let error: string | undefined;
      for (let k = 0; k < keysPerQueue[i]!.length; k++) {
        const [err, value] = results[index++] ?? [new Error('missing reply'), null];
        if (err) error ??= err.message;
        else messages += Number(value);
      }
      return error === undefined ? { name, messages, consumers: null } : { name, messages: null, consumers: null, error };
    });
  }

  // -------------------------------------------------------------------------------------------
  // Close

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    this.#backlog = [];
    this.#backlogHead = 0;
    this.#backlogBytes = 0;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    const session = this.#session;
    // Pending broadcasts end with the replies they have; their cleanup goes out before QUIT.
    for (const pending of this.#pending) {
      pending.aborted = true;
      pending.client?.disconnect();
    }
    await withTimeout(Promise.allSettled([...this.#pending].map((p) => p.done)), CLOSE_GRACE_MS, 'pidbox cleanup').catch(() => undefined);
    for (const waiter of this.#replyWaiters.splice(0)) waiter.reject(new BrokerUnavailableError('transport closed'));
    if (!session) return;
    this.#session = undefined;
    session.dead = true;
    session.up = false;
    clearTimeout(session.connectTimer);
    clearInterval(session.healthTimer);
    for (const client of [...session.idleReplyClients.splice(0), ...session.busyReplyClients]) client.disconnect();
    await Promise.all([session.events, session.commands].map((client) => quit(client)));
  }
}

/** QUIT when the connection is usable, else (or when QUIT hangs) drop the socket. */
async function quit(client: Redis): Promise<void> {
  if (client.status === 'ready') {
    await withTimeout(client.quit(), CLOSE_GRACE_MS, 'QUIT').catch(() => undefined);
  }
  client.disconnect();
}

function throwOnPipelineError(results: Array<[Error | null, unknown]> | null): void {
  if (!results) throw new Error('transaction aborted');
  for (const [error] of results) if (error) throw error;
}

class DeadlineError extends Error {}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new DeadlineError(`${what} timed out after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
