import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../src/auth/index.js';
import { waitFor } from '../support/exporter.js';
import { createVhost, uniqueId } from '../support/isolation.js';
import { startPrometheus, type RunningPrometheus } from '../support/prometheus.js';
import { startSecureService, type SecureService } from '../support/secure-service.js';
import { issueServerCertificate, makeCertificates, type TestCertificates } from '../support/tls-endpoints.js';

/**
 * The listener options Flower users run with, on the real service: HTTPS served by the process
 * (optionally requiring client certificates), and a unix socket; driven by curl and scraped by a
 * real Prometheus over TLS. Certificate reload on SIGHUP runs the real command and keeps a
 * connection open across it.
 */

const run = promisify(execFile);
const MAIN = ['--import', 'tsx', path.resolve('src/main.ts')];

let certs: TestCertificates;
let server: { cert: string; key: string };
let vhost: Awaited<ReturnType<typeof createVhost>>;
const dir = mkdtempSync(path.join(tmpdir(), 'cap-listener-'));
const running: SecureService[] = [];
const children: ChildProcess[] = [];
const prometheuses: RunningPrometheus[] = [];

beforeAll(async () => {
  [certs, vhost] = await Promise.all([makeCertificates(), createVhost(uniqueId('listener'))]);
  server = await issueServerCertificate(certs, 'autopilot', 'IP:127.0.0.1,DNS:localhost');
});

afterAll(async () => {
  for (const c of children) if (c.pid !== undefined && c.exitCode === null && c.signalCode === null) process.kill(c.pid, 'SIGTERM');
  await Promise.allSettled([...running.map((s) => s.stop()), ...prometheuses.map((p) => p.stop())]);
  await vhost?.remove();
  await certs?.remove();
});

async function start(config: Record<string, unknown>): Promise<SecureService> {
  const s = await startSecureService({ broker_url: vhost.url, ...config });
  running.push(s);
  return s;
}

/** curl's answer: status, headers and body, or its exit code when the connection failed. */
async function curl(...args: string[]): Promise<{ code: number; status: number; headers: string; body: string; stderr: string }> {
  const headersFile = path.join(dir, `headers-${uniqueId('h')}`);
  try {
    const { stdout, stderr } = await run('curl', ['-sS', '--max-time', '10', '-D', headersFile, ...args]);
    const headers = readFileSync(headersFile, 'utf8');
    return { code: 0, status: Number(/^HTTP\/[\d.]+ (\d{3})/.exec(headers)?.[1] ?? 0), headers, body: stdout, stderr };
  } catch (e) {
    const err = e as { code?: number; stderr?: string };
    return { code: err.code ?? -1, status: 0, headers: '', body: '', stderr: err.stderr ?? '' };
  }
}

/** The HTTPS service's URL, scraped by Prometheus beside the mutual-TLS one. */
let tlsUrl: string;

describe('HTTPS served by the process (tls.cert_file, tls.key_file)', () => {
  let s: SecureService;
  let url: string;
  beforeAll(async () => {
    const users = [{ username: 'alice', password_hash: await hashPassword('alice-Correct-Horse-1'), role: 'admin' }];
    s = await start({ tls: { cert_file: server.cert, key_file: server.key }, auth: { users } });
    url = tlsUrl = `https://127.0.0.1:${s.port}`;
  });

  it('serves probes, /metrics and readiness over TLS to curl, verified with the CA; plain HTTP on that port gets no answer', async () => {
    const healthy = await curl('--cacert', certs.caFile, `${url}/-/healthy`);
    expect(healthy).toMatchObject({ code: 0, status: 200, body: 'OK\n' });
    const metrics = await curl('--cacert', certs.caFile, `${url}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.body).toContain('celery_autopilot_broker_connected');
    await waitFor('ready', async () => ((await curl('--cacert', certs.caFile, `${url}/-/ready`)).status === 200 ? true : undefined));
    const plain = await curl(`http://127.0.0.1:${s.port}/-/healthy`);
    expect(plain.status).not.toBe(200);
    // A client that does not trust the CA refuses the certificate.
    expect((await curl(`${url}/-/healthy`)).code).toBe(60);
  });

  it('sends HSTS, and the session cookie is Secure with the __Host- prefix by default', async () => {
    const page = await curl('--cacert', certs.caFile, `${url}/login`);
    expect(page.status).toBe(200);
    expect(page.headers).toMatch(/^strict-transport-security: max-age=\d+/im);
    expect(page.headers).toMatch(/^set-cookie: __Host-celery_autopilot_session=[^;]+;.*Path=\/;.*HttpOnly;.*Secure/im);
  });
});

describe('mutual TLS (tls.client_ca_file)', () => {
  let url: string;
  beforeAll(async () => {
    const s = await start({ tls: { cert_file: server.cert, key_file: server.key, client_ca_file: certs.caFile } });
    url = `https://127.0.0.1:${s.port}`;
  });

  it('refuses a client without a certificate at the handshake and serves one with a certificate the CA signed', async () => {
    const without = await curl('--cacert', certs.caFile, `${url}/-/healthy`);
    expect(without.code).not.toBe(0);
    expect(without.status).toBe(0);
    const withCert = await curl('--cacert', certs.caFile, '--cert', certs.clientCert, '--key', certs.clientKey, `${url}/metrics`);
    expect(withCert.status).toBe(200);
    expect(withCert.body).toContain('celery_autopilot_broker_connected');
  });

  it('a real Prometheus scrapes over TLS, checking the certificate with the CA: the HTTPS target, and the mutual-TLS one with its client certificate (down without)', async () => {
    const prom = await startPrometheus({
      targets: [
        { job: 'tls', url: `${tlsUrl}/metrics`, tlsConfig: { ca_file: certs.caFile } },
        {
          job: 'mtls',
          url: `${url}/metrics`,
          tlsConfig: { ca_file: certs.caFile, cert_file: certs.clientCert, key_file: certs.clientKey },
        },
        { job: 'mtls-no-client-cert', url: `${url}/metrics`, tlsConfig: { ca_file: certs.caFile } },
      ],
    });
    prometheuses.push(prom);
    // A scraped target's own series arrive with its up sample.
    const up = await waitFor(
      'every target scraped once, the two that answer with their metrics',
      async () => {
        const ups = await prom.query('up');
        const connected = await prom.query('count by (job) (celery_autopilot_broker_connected)');
        if (ups.resultType !== 'vector' || connected.resultType !== 'vector' || ups.result.length < 3) return undefined;
        return {
          up: Object.fromEntries(ups.result.map((x) => [x.metric.job, x.value[1]])),
          scraped: connected.result.map((x) => x.metric.job).sort(),
        };
      },
      30_000,
      250,
      prom.logs,
    );
    expect(up).toEqual({ up: { tls: '1', mtls: '1', 'mtls-no-client-cert': '0' }, scraped: ['mtls', 'tls'] });
  });
});

describe('unix socket (unix_socket, unix_socket_mode)', () => {
  it('serves probes and /metrics on the socket, with the file mode asked for; a stale socket file is replaced, and removed at stop', async () => {
    const socket = path.join(dir, 'stale.sock');
    // A socket file left behind by a process that died (Python does not remove it on exit).
    const leftover = spawnSync('python3', ['-c', `import socket; s=socket.socket(socket.AF_UNIX); s.bind(${JSON.stringify(socket)})`]);
    expect(leftover.status).toBe(0);
    expect(statSync(socket).isSocket()).toBe(true);

    const s = await start({ unix_socket: socket, unix_socket_mode: '0660' });
    expect(statSync(socket).isSocket()).toBe(true);
    expect(statSync(socket).mode & 0o777).toBe(0o660);
    expect(await curl('--unix-socket', socket, 'http://localhost/-/healthy')).toMatchObject({ status: 200, body: 'OK\n' });
    expect(await curl('--unix-socket', socket, 'http://localhost/healthcheck')).toMatchObject({ status: 200, body: 'OK' });
    const metrics = await curl('--unix-socket', socket, 'http://localhost/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.body).toContain('celery_autopilot_broker_connected');
    await waitFor('ready over the socket', async () =>
      (await curl('--unix-socket', socket, 'http://localhost/-/ready')).status === 200 ? true : undefined,
    );
    await s.stop();
    expect(existsSync(socket)).toBe(false);
  });

  it('HTTPS on a unix socket, mode 0600 by default', async () => {
    const socket = path.join(dir, 'tls.sock');
    await start({ unix_socket: socket, tls: { cert_file: server.cert, key_file: server.key } });
    expect(statSync(socket).mode & 0o777).toBe(0o600);
    const r = await curl('--unix-socket', socket, '--cacert', certs.caFile, 'https://localhost/-/healthy');
    expect(r).toMatchObject({ status: 200, body: 'OK\n' });
  });

  it('refuses a path that is not a socket, and one another process listens on', async () => {
    const file = path.join(dir, 'not-a-socket');
    writeFileSync(file, 'keep me');
    await expect(start({ unix_socket: file })).rejects.toThrow(`unix_socket ${file} exists and is not a socket: not replacing it`);
    expect(readFileSync(file, 'utf8')).toBe('keep me');
    const busy = path.join(dir, 'busy.sock');
    const other = createServer();
    await new Promise<void>((resolve) => other.listen(busy, resolve));
    try {
      await expect(start({ unix_socket: busy })).rejects.toThrow(`unix_socket ${busy}: another process is listening on it`);
    } finally {
      other.close();
    }
  });
});

/** The real command, run to its end. */
async function command(...args: string[]): Promise<{ status: number; stderr: string }> {
  try {
    await run(process.execPath, [...MAIN, ...args], { timeout: 60_000 });
    return { status: 0, stderr: '' };
  } catch (e) {
    const err = e as { code?: number; stderr?: string };
    return { status: err.code ?? -1, stderr: err.stderr ?? '' };
  }
}

function writeConfig(name: string, config: Record<string, unknown>): string {
  const file = path.join(dir, `${name}.yaml`);
  writeFileSync(file, stringify({ broker_url: vhost.url, audit: { file: '' }, listen_address: '127.0.0.1', ...config }));
  return file;
}

describe('bad certificate or key files', () => {
  const cases: Array<[string, () => Record<string, unknown>, string]> = [
    ['a key that does not belong to the certificate', () => ({ cert_file: server.cert, key_file: certs.clientKey }), 'key values mismatch'],
    [
      'a missing key file',
      () => ({ cert_file: server.cert, key_file: path.join(dir, 'nope.key') }),
      `tls.key_file: cannot read ${path.join(dir, 'nope.key')}: ENOENT`,
    ],
    ['a certificate file that is not PEM', () => ({ cert_file: path.join(dir, 'garbage.pem'), key_file: server.key }), 'tls.cert_file'],
  ];
  beforeAll(() => writeFileSync(path.join(dir, 'garbage.pem'), 'not a certificate\n'));

  it.each(cases)('%s: --check-config refuses it with exit status 2', async (_what, tls, message) => {
    const r = await command('--check-config', '--config', writeConfig(uniqueId('bad'), { tls: tls() }));
    expect(r.stderr).toContain(message);
    expect(r.status).toBe(2);
  });

  it.each(cases)('%s: the service refuses to start', async (_what, tls, message) => {
    const r = await command('--port', '0', '--config', writeConfig(uniqueId('bad'), { tls: tls() }));
    expect(r.stderr).toMatch(/^cannot start: /);
    expect(r.stderr).toContain(message);
    expect(r.status).toBe(2);
  });
});

describe('SIGHUP reloads the certificate without dropping connections', () => {
  it('an open keep-alive connection keeps working; new connections get the new certificate; a broken one is refused and the last good one stays', async () => {
    const live = { cert: path.join(dir, 'live.pem'), key: path.join(dir, 'live.key') };
    copyFileSync(server.cert, live.cert);
    copyFileSync(server.key, live.key);
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const p = (probe.address() as { port: number }).port;
        probe.close(() => resolve(p));
      });
    });
    const child = spawn(
      process.execPath,
      [...MAIN, '--port', String(port), '--config', writeConfig('reload', { tls: { cert_file: live.cert, key_file: live.key } })],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    children.push(child);
    let log = '';
    child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    await waitFor('listening', () => (log.includes('celery-autopilot listening') ? true : undefined), 60_000);

    const ca = readFileSync(certs.caFile);
    const keepAlive = new Agent({ keepAlive: true, maxSockets: 1, ca });
    const get = (agent: Agent) =>
      new Promise<{ status: number; reused: boolean; fingerprint: string; localPort: number }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: '/-/healthy', agent, ca }, (res) => {
          // Read before the body ends: the agent takes the socket back then.
          const socket = res.socket as TLSSocket;
          const seen = {
            status: res.statusCode ?? 0,
            reused: req.reusedSocket,
            fingerprint: socket.getPeerCertificate().fingerprint256,
            localPort: socket.localPort ?? 0,
          };
          res.resume();
          res.on('end', () => resolve(seen));
        });
        req.on('error', reject);
        req.end();
      });
    const fingerprint = (file: string) => new X509Certificate(readFileSync(file)).fingerprint256;

    const first = await get(keepAlive);
    expect(first).toMatchObject({ status: 200, reused: false, fingerprint: fingerprint(server.cert) });

    const renewed = await issueServerCertificate(certs, 'autopilot-renewed', 'IP:127.0.0.1,DNS:localhost');
    copyFileSync(renewed.cert, live.cert);
    copyFileSync(renewed.key, live.key);
    process.kill(child.pid!, 'SIGHUP');
    await waitFor('reloaded', () => (log.includes('TLS certificate reloaded') ? true : undefined), 30_000);

    const again = await get(keepAlive);
    expect(again).toMatchObject({ status: 200, reused: true, localPort: first.localPort, fingerprint: fingerprint(server.cert) });
    const fresh = new Agent({ keepAlive: false, ca });
    expect(await get(fresh)).toMatchObject({ status: 200, reused: false, fingerprint: fingerprint(renewed.cert) });

    writeFileSync(live.key, 'broken\n');
    process.kill(child.pid!, 'SIGHUP');
    await waitFor(
      'reload refused',
      () => (log.includes('TLS certificate not reloaded; the previous one stays in use') ? true : undefined),
      30_000,
    );
    expect(await get(new Agent({ keepAlive: false, ca }))).toMatchObject({ status: 200, fingerprint: fingerprint(renewed.cert) });
    expect((await get(keepAlive)).status).toBe(200);
    keepAlive.destroy();

    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
