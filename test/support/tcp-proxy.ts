import net from 'node:net';

/**
 * A TCP proxy in front of a shared broker that a test can cut: `cut()` destroys every open
 * connection (a broker loss as the client sees it) without touching the broker other suites use;
 * `pause()` refuses new connections until `resume()`, like a broker that is down.
 */
export class TcpProxy {
  #server: net.Server;
  #sockets = new Set<net.Socket>();
  #accepting = true;
  #frozen = false;
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
    upstream.on('data', (d) => {
      if (!this.#frozen) client.write(d);
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

  /** Keeps connections open but silently drops all bytes both ways: a half-open socket. */
  freeze(): void {
    this.#frozen = true;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
