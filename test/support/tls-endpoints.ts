import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

/**
 * Real TLS endpoints made at test time: a CA, a server certificate for `broker.test` and a client
 * certificate signed by it (plus an unrelated CA, to be refused), all from openssl; a second
 * redis-server speaking TLS itself (Debian's build has it) and stunnel in front of the shared
 * RabbitMQ. Each process is started by the test and stopped by its PID.
 */

const run = promisify(execFile);

/** The only name the server certificate holds: reaching 127.0.0.1 needs server_name to match it. */
export const SERVER_NAME = 'broker.test';

export interface TestCertificates {
  readonly dir: string;
  readonly caFile: string;
  readonly wrongCaFile: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
  remove(): Promise<void>;
}

async function openssl(dir: string, ...args: string[]): Promise<void> {
  await run('openssl', args, { cwd: dir });
}

/** P-256 keys: quick to make, and accepted by OpenSSL 3's default security level. */
async function selfSignedCa(dir: string, name: string, cn: string): Promise<void> {
  await openssl(
    dir,
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.pem`,
    '-days',
    '2',
    '-subj',
    `/CN=${cn}`,
  );
}

async function signedLeaf(dir: string, name: string, cn: string, extensions: string): Promise<void> {
  await openssl(
    dir,
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
    '-subj',
    `/CN=${cn}`,
  );
  await writeFile(path.join(dir, `${name}.ext`), extensions);
  await openssl(
    dir,
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    `${name}.pem`,
    '-days',
    '2',
    '-extfile',
    `${name}.ext`,
  );
}

export async function makeCertificates(): Promise<TestCertificates> {
  const dir = await mkdtemp(path.join(tmpdir(), 'autopilot-tls-'));
  await selfSignedCa(dir, 'ca', 'autopilot test CA');
  await selfSignedCa(dir, 'wrong-ca', 'some other CA');
  await signedLeaf(dir, 'server', SERVER_NAME, `subjectAltName=DNS:${SERVER_NAME}\nextendedKeyUsage=serverAuth\n`);
  await signedLeaf(dir, 'client', 'autopilot-client', 'extendedKeyUsage=clientAuth\n');
  const at = (file: string) => path.join(dir, file);
  return {
    dir,
    caFile: at('ca.pem'),
    wrongCaFile: at('wrong-ca.pem'),
    serverCert: at('server.pem'),
    serverKey: at('server.key'),
    clientCert: at('client.pem'),
    clientKey: at('client.key'),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

/**
 * One more server certificate from the same CA, for other names (e.g. `IP:127.0.0.1`): for
 * services the tests reach over HTTPS by address. Returns the PEM file paths.
 */
export async function issueServerCertificate(
  certs: TestCertificates,
  name: string,
  subjectAltName: string,
): Promise<{ cert: string; key: string }> {
  await signedLeaf(certs.dir, name, name, `subjectAltName=${subjectAltName}\nextendedKeyUsage=serverAuth\n`);
  return { cert: path.join(certs.dir, `${name}.pem`), key: path.join(certs.dir, `${name}.key`) };
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function waitForPort(port: number, child: ChildProcess, logs: () => string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${child.spawnfile} exited with ${child.exitCode}: ${logs()}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${port} after ${timeoutMs} ms: ${logs()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface TlsEndpoint {
  /** The TLS port. */
  readonly port: number;
  /** Redis only: the same server's plain port, for Celery workers. */
  readonly plainPort?: number;
  stop(): Promise<void>;
}

function started(command: string, args: string[]): { child: ChildProcess; logs: () => string } {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk: Buffer) => (output = (output + chunk.toString('utf8')).slice(-4000));
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return { child, logs: () => output };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  process.kill(child.pid, 'SIGTERM');
  const timer = setTimeout(() => child.pid !== undefined && child.exitCode === null && process.kill(child.pid, 'SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

/**
 * A redis-server of its own with a TLS port (client certificates required) and a plain port, on
 * 127.0.0.1 and ::1 when there is one (so `localhost` reaches it either way). `server`: another
 * certificate than the broker's (e.g. one from issueServerCertificate).
 */
export async function startTlsRedis(
  certs: TestCertificates,
  server: { cert: string; key: string } = { cert: certs.serverCert, key: certs.serverKey },
): Promise<TlsEndpoint> {
  const [port, plainPort] = [await freePort(), await freePort()];
  const { child, logs } = started('redis-server', [
    '--bind',
    '127.0.0.1',
    '-::1',
    '--port',
    String(plainPort),
    '--tls-port',
    String(port),
    '--tls-cert-file',
    server.cert,
    '--tls-key-file',
    server.key,
    '--tls-ca-cert-file',
    certs.caFile,
    '--tls-auth-clients',
    'yes',
    '--save',
    '',
    '--appendonly',
    'no',
    '--dir',
    certs.dir,
  ]);
  await waitForPort(port, child, logs);
  return { port, plainPort, stop: () => stopChild(child) };
}

/** stunnel in front of the shared RabbitMQ: amqps:// on its port, client certificates required. */
export async function startStunnelForRabbit(certs: TestCertificates, target = 5672): Promise<TlsEndpoint> {
  const port = await freePort();
  const conf = path.join(certs.dir, `stunnel-${port}.conf`);
  await writeFile(
    conf,
    [
      'foreground = yes',
      'pid =',
      'debug = warning',
      '[amqps]',
      `accept = 127.0.0.1:${port}`,
      `connect = 127.0.0.1:${target}`,
      `cert = ${certs.serverCert}`,
      `key = ${certs.serverKey}`,
      `CAfile = ${certs.caFile}`,
      'verifyChain = yes',
      '',
    ].join('\n'),
  );
  const { child, logs } = started('stunnel4', [conf]);
  await waitForPort(port, child, logs);
  return { port, stop: () => stopChild(child) };
}
