import type { Socket } from 'node:net';
import { Redis } from 'ioredis';
import { asError, DeadlineError, withDeadline } from '../async.js';
import { paceReads, type ReadPacing } from '../read-pacing.js';
import { BrokerUnavailableError } from '../transport.js';

/**
 * One connect attempt's pair of connections, and its health: the events connection (PSUBSCRIBE,
 * bodies kept as Buffers) and the commands connection (pidbox PUBLISH, reply bindings, LLEN
 * pipelines, cleanup). Losing either (socket close, a connect that never completes, a PING left
 * unanswered on a half-open socket) ends the whole session, once; the transport then builds a
 * new one with fresh clients.
 */

export interface SessionHandlers {
  /** An event message on the subscription; never called once the session is lost. */
  onMessage(channel: Buffer, message: Buffer): void;
  /** Both connections are open and the subscription is live. */
  onUp(session: RedisSession): void;
  /** The session is over (it was up, or never came up); it has already dropped its sockets. */
  onLost(session: RedisSession, error: Error, wasUp: boolean): void;
}

export interface SessionSettings {
  readonly pattern: string;
  readonly healthCheckSeconds: number;
  readonly connectTimeoutMs: number;
  /** Pause between reads of the events socket at low rates, in ms (../read-pacing.ts); 0: off. */
  readonly readPacingMs: number;
}

type Probe = { outstanding: boolean; receivedAtSend: number };

/** Upper bound on a graceful QUIT before the socket is simply destroyed. */
const CLOSE_GRACE_MS = 1_000;

export class RedisSession {
  readonly events: Redis;
  readonly commands: Redis;
  #up = false;
  #dead = false;
  /** The last socket error, which says more than the close that follows it. */
  #lastError: Error | undefined;
  #connectTimer: NodeJS.Timeout | undefined;
  #healthTimer: NodeJS.Timeout | undefined;
  #reads: ReadPacing | undefined;
  /** Event messages received: traffic that proves the subscriber socket is alive. */
  #received = 0;
  /** A PING sent by the health check and not answered yet, per connection. */
  readonly #probes: Record<'events' | 'commands', Probe> = {
    events: { outstanding: false, receivedAtSend: 0 },
    commands: { outstanding: false, receivedAtSend: 0 },
  };

  constructor(
    newClient: (role: 'events' | 'commands') => Redis,
    private readonly settings: SessionSettings,
    private readonly handlers: SessionHandlers,
  ) {
    this.events = newClient('events');
    this.commands = newClient('commands');
    for (const client of [this.events, this.commands]) {
      client.on('error', (error: Error) => (this.#lastError = error));
      client.on('close', () => this.lose(this.#lastError ?? new Error('connection to Redis closed')));
    }
    // Bound to the session: a late message from a torn-down subscriber must not be counted.
    this.events.on('pmessageBuffer', (_pattern: string, channel: Buffer, message: Buffer) => {
      if (this.#dead) return;
      this.#received += 1;
      this.handlers.onMessage(channel, message);
    });
  }

  get up(): boolean {
    return this.#up;
  }

  get dead(): boolean {
    return this.#dead;
  }

  open(): void {
    // ioredis's connectTimeout covers the TCP connect only; this also covers a server (or a
    // proxy) that accepts the socket and then never answers (a TLS handshake that stalls too).
    this.#connectTimer = setTimeout(
      () => this.lose(new Error(`connect timed out after ${this.settings.connectTimeoutMs} ms`)),
      this.settings.connectTimeoutMs,
    );
    Promise.all([this.events.connect(), this.commands.connect()])
      .then(() => this.events.psubscribe(this.settings.pattern))
      .then(
        () => this.#becomeUp(),
        (error: unknown) => this.lose(asError(error)),
      );
  }

  #becomeUp(): void {
    if (this.#dead) return;
    clearTimeout(this.#connectTimer);
    this.#connectTimer = undefined;
    this.#up = true;
    this.#healthTimer = setInterval(() => this.#checkHealth(), this.settings.healthCheckSeconds * 1000);
    this.#healthTimer.unref();
    // Only the subscriber is paced: replies and commands travel on the other connections.
    this.#reads = paceReads(this.events.stream as Socket, this.settings.readPacingMs);
    this.handlers.onUp(this);
  }

  /**
   * Every interval each connection gets a PING (allowed in subscribe mode). A PING still
   * unanswered one interval later means a dead socket, unless events kept arriving meanwhile:
   * a subscriber working through a burst answers late but is plainly alive.
   */
  #checkHealth(): void {
    if (this.#dead) return;
    for (const role of ['events', 'commands'] as const) {
      const probe = this.#probes[role];
      if (probe.outstanding) {
        if (role === 'events' && this.#received !== probe.receivedAtSend) {
          probe.receivedAtSend = this.#received;
          continue;
        }
        this.lose(new Error(`no answer to PING on the ${role} connection within ${this.settings.healthCheckSeconds} s`));
        return;
      }
      probe.outstanding = true;
      probe.receivedAtSend = this.#received;
      this[role].ping().then(
        () => {
          probe.outstanding = false;
        },
        (error: unknown) => this.lose(asError(error)),
      );
    }
  }

  /** Runs a command on the commands connection, failing fast (and ending the session) if it hangs. */
  async command<T>(run: (client: Redis) => Promise<T>, what: string): Promise<T> {
    try {
      return await withDeadline(run(this.commands), this.settings.connectTimeoutMs, what);
    } catch (error) {
      const failure = asError(error);
      if (failure instanceof DeadlineError) this.lose(failure);
      throw new BrokerUnavailableError(`${what} failed: ${failure.message}`);
    }
  }

  /** Ends the session (once): drops both sockets and tells the transport. */
  lose(error: Error): void {
    if (this.#dead) return;
    const wasUp = this.#up;
    this.#retire();
    for (const client of [this.events, this.commands]) client.disconnect();
    this.handlers.onLost(this, error, wasUp);
  }

  /** For close(): QUIT both connections when they are usable, without reporting a loss. */
  async close(): Promise<void> {
    this.#retire();
    await Promise.all([this.events, this.commands].map((client) => quit(client)));
  }

  #retire(): void {
    this.#dead = true;
    this.#up = false;
    clearTimeout(this.#connectTimer);
    clearInterval(this.#healthTimer);
    this.#reads?.stop();
  }
}

/** QUIT when the connection is usable, else (or when QUIT hangs) drop the socket. */
export async function quit(client: Redis): Promise<void> {
  if (client.status === 'ready') {
    await withDeadline(client.quit(), CLOSE_GRACE_MS, 'QUIT').catch(() => undefined);
  }
  client.disconnect();
}
