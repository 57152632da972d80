import net from 'node:net';

/**
 * A TCP proxy in front of a shared broker that a test can cut: `cut()` destroys every open
 * connection (a broker loss as the client sees it) without touching the broker other suites use;
 * `pause()` refuses new connections until `resume()`, like a broker that is down;
 * `delayReplies()` makes it a broker that answers slowly.
 */
export class TcpProxy {
  #server: net.Server;
  #sockets = new Set<net.Socket>();
  #accepting = true;
  #frozen = false;
  #replyDelayMs = 0;
  port = 0;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {
    this.#server = net.createServer((client) => this.#onClient(client));
  }

  async listen(port = 0): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, '127.0.0.1', () => resolve());
    });
    this.port = (this.#server.address() as net.AddressInfo).port;
    return this.port;
  }

  #onClient(client: net.Socket): void {
    if (!this.#accepting) {
      client.destroy();
      return;
    }
    const upstream = net.connect(this.targetPort, this.targetHost);
    for (const s of [client, upstream]) {
      this.#sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => this.#sockets.delete(s));
    }
    client.on('data', (d) => {
      if (!this.#frozen) upstream.write(d);
    });
    const toClient = new DelayedPipe(client);
    upstream.on('data', (d) => {
      if (!this.#frozen) toClient.write(d, this.#replyDelayMs);
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  }

  /** Destroys every open connection; new ones are still accepted. */
  cut(): void {
    for (const s of this.#sockets) s.destroy();
  }

  /** Refuses new connections and destroys open ones: the broker looks down. */
  pause(): void {
    this.#accepting = false;
    this.cut();
  }

  resume(): void {
    this.#accepting = true;
    this.#frozen = false;
  }

  /**
   * From now on every byte from the broker reaches its client `ms` later, in order, on open and
   * new connections alike; requests go through at once. Every answer the client waits for (a
   * queue depth, a channel open) takes `ms` longer.
   */
  delayReplies(ms: number): void {
    this.#replyDelayMs = ms;
  }

  /** Keeps connections open but silently drops all bytes both ways: a half-open socket. */
  freeze(): void {
    this.#frozen = true;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/** Writes chunks to `to`, each no sooner than its delay after it arrived, never out of order. */
class DelayedPipe {
  readonly #queue: Array<{ at: number; chunk: Buffer }> = [];
  #timer: NodeJS.Timeout | undefined;

  constructor(private readonly to: net.Socket) {}

  write(chunk: Buffer, delayMs: number): void {
    if (delayMs <= 0 && this.#queue.length === 0) {
      this.to.write(chunk);
      return;
    }
    this.#queue.push({ at: Date.now() + delayMs, chunk });
    this.#pump();
  }

  #pump(): void {
    if (this.#timer !== undefined) return;
    while (this.#queue.length > 0 && this.#queue[0]!.at <= Date.now()) {
      const { chunk } = this.#queue.shift()!;
      if (!this.to.destroyed) this.to.write(chunk);
    }
    const next = this.#queue[0];
    if (next === undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#pump();
    }, next.at - Date.now());
  }
}
