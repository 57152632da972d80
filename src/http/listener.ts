import { X509Certificate } from 'node:crypto';
import { chmodSync, lstatSync, readFileSync, unlinkSync } from 'node:fs';
import { createServer as createHttpServer, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { connect } from 'node:net';
import { createSecureContext } from 'node:tls';
import type { Config } from '../config/load.js';

/** A listener setting that cannot work: refused at start and by --check-config. */
export class ListenerError extends Error {}

export type ListenerConfig = Pick<Config, 'tls' | 'unix_socket' | 'unix_socket_mode'>;

/** The PEM contents the HTTPS server runs with, and what to say about them (never the key). */
export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca: Buffer | undefined;
  readonly subject: string;
  readonly validTo: string;
  /** Something an operator should know but that does not stop the start (an expired certificate). */
  readonly warnings: readonly string[];
}

/**
 * Reads tls.cert_file, key_file and client_ca_file and builds a TLS context from them, so a
 * key that does not match its certificate, or a file that is not PEM, is found here and not at
 * the first handshake. The one loader for the start, SIGHUP and --check-config. Undefined when
 * TLS is not configured.
 */
export function loadTlsMaterial(tls: ListenerConfig['tls']): TlsMaterial | undefined {
  if (tls.cert_file === undefined || tls.key_file === undefined) return undefined;
  const cert = readPem('tls.cert_file', tls.cert_file);
  const key = readPem('tls.key_file', tls.key_file);
  const ca = tls.client_ca_file === undefined ? undefined : readPem('tls.client_ca_file', tls.client_ca_file);
  try {
    createSecureContext({ cert, key, ...(ca ? { ca } : {}) });
  } catch (e) {
    throw new ListenerError(
      `tls.cert_file ${tls.cert_file} and tls.key_file ${tls.key_file}${ca ? ` (client_ca_file ${tls.client_ca_file})` : ''}: ${(e as Error).message}`,
    );
  }
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (e) {
    throw new ListenerError(`tls.cert_file ${tls.cert_file}: not a certificate (${(e as Error).message})`);
  }
  const warnings =
    Date.parse(x509.validTo) < Date.now() ? [`tls.cert_file ${tls.cert_file}: the certificate expired on ${x509.validTo}`] : [];
  return { cert, key, ca, subject: x509.subject.replace(/\n/g, ', '), validTo: x509.validTo, warnings };
}

function readPem(what: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new ListenerError(`${what}: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/**
 * The HTTP surface's server: plain HTTP, HTTPS with the configured certificate (optionally
 * requiring client certificates), on a TCP port or a unix socket. The certificate is read when
 * the listener is made, so a bad one stops the start; `reloadTls` swaps it in place
 * (server.setSecureContext): connections already open keep their session, new ones get the new
 * certificate.
 */
export class Listener {
  #material: TlsMaterial | undefined;
  #server: Server | HttpsServer | undefined;

  constructor(private readonly config: ListenerConfig) {
    this.#material = loadTlsMaterial(config.tls);
  }

  get servedOverTls(): boolean {
    return this.#material !== undefined;
  }

  get tls(): TlsMaterial | undefined {
    return this.#material;
  }

  get server(): Server | HttpsServer | undefined {
    return this.#server;
  }

  /** Listens on the unix socket when configured, else on host:port; resolves with the bound port (0 on a socket). */
  async listen(app: RequestListener, port: number, host: string): Promise<number> {
    const m = this.#material;
    const server: Server | HttpsServer = m
      ? createHttpsServer(
          { cert: m.cert, key: m.key, ...(m.ca ? { ca: m.ca, requestCert: true, rejectUnauthorized: true } : {}), minVersion: 'TLSv1.2' },
          app,
        )
      : createHttpServer(app);
    this.#server = server;
    const socket = this.config.unix_socket;
    const listening = new Promise<void>((resolve, reject) => {
      server.once('listening', () => resolve());
      server.once('error', reject);
    });
    if (socket === undefined) {
      server.listen(port, host);
      await listening;
      const address = server.address();
      return typeof address === 'object' && address ? address.port : port;
    }
    await clearStaleSocket(socket);
    // The socket file is created with the process umask: narrowed for that one synchronous bind,
    // so it never exists with wider permissions than asked, then set exactly.
    const previous = process.umask(0o777 & ~this.config.unix_socket_mode);
    try {
      server.listen(socket);
    } finally {
      process.umask(previous);
    }
    await listening;
    chmodSync(socket, this.config.unix_socket_mode);
    return 0;
  }

  /** Reads the certificate files again and serves them to new connections; throws (keeping the old ones) when they do not work. */
  reloadTls(): TlsMaterial | undefined {
    if (!this.#material) return undefined;
    const m = loadTlsMaterial(this.config.tls)!;
    (this.#server as HttpsServer | undefined)?.setSecureContext({ cert: m.cert, key: m.key, ...(m.ca ? { ca: m.ca } : {}) });
    this.#material = m;
    return m;
  }

  /** No new connections; in-flight requests finish, idle ones close now, the rest after 5 s. The socket file goes with it. */
  async close(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
      setTimeout(() => server.closeAllConnections(), 5000).unref();
    });
  }
}

/**
 * A socket file left by a process that died is removed; one that still answers, or a path that
 * is not a socket at all, is refused rather than taken over or deleted.
 */
async function clearStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new ListenerError(`unix_socket ${path}: ${(e as Error).message}`);
  }
  if (!isSocket) throw new ListenerError(`unix_socket ${path} exists and is not a socket: not replacing it`);
  const answered = await new Promise<boolean>((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (answered) throw new ListenerError(`unix_socket ${path}: another process is listening on it`);
  unlinkSync(path);
}
