import { spawnSync } from 'node:child_process';
import { connect } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { notification } from '../support/alertmanager.js';
import { createVhost, uniqueId } from '../support/isolation.js';
import { REPO_ROOT } from '../support/prometheus.js';
import { basicAuth, send, startSecureService, type SecureService } from '../support/secure-service.js';

/**
 * Attacks on the Alertmanager receiver of the real service (real broker, real HTTP): each test
 * reproduces one attack and fails on the code before its fix. docs/security.md lists each
 * protection beside the test that proves it.
 */

const RULES = path.join(REPO_ROOT, 'test/fixtures/remediation/faults.yml');
const dir = mkdtempSync(path.join(tmpdir(), 'cap-sec-webhook-'));
const tokenFile = (name: string, content: string) => {
  const file = path.join(dir, name);
  writeFileSync(file, content, { mode: 0o600 });
  return file;
};
// An alert no rule acts on: the receiver answers 200 with a decision, nothing is sent.
const BODY = JSON.stringify(notification([{ labels: { alertname: 'NothingToDo', queue_name: 'q' } }]));

let vhost: Awaited<ReturnType<typeof createVhost>>;
const running: SecureService[] = [];
beforeAll(async () => {
  vhost = await createVhost(uniqueId('sec-webhook'));
});
afterAll(async () => {
  await Promise.allSettled(running.map((s) => s.stop()));
  await vhost?.remove();
});

async function start(webhook: Record<string, unknown>, auth: Record<string, unknown> = { tokens: [] }): Promise<SecureService> {
  const s = await startSecureService({ broker_url: vhost.url, auth, remediation: { enabled: true, rules_file: RULES, webhook } });
  running.push(s);
  return s;
}

/**
 * A POST written byte for byte: header values as latin-1 (one byte per character, as curl or
 * Alertmanager put them on the wire). Node's client would send a non-ASCII header as UTF-8
 * when it shares a write with the body.
 */
function rawPost(s: SecureService, authorization: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = connect(s.port, '127.0.0.1', () => {
      const head = `POST /api/v1/alertmanager HTTP/1.1\r\nHost: 127.0.0.1:${s.port}\r\nContent-Type: application/json\r\nAuthorization: ${authorization}\r\nContent-Length: ${Buffer.byteLength(BODY)}\r\nConnection: close\r\n\r\n`;
      socket.write(Buffer.concat([Buffer.from(head, 'latin1'), Buffer.from(BODY)]));
    });
    let text = '';
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.on('end', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0)));
    socket.on('error', reject);
  });
}

const post = (s: SecureService, headers: Record<string, string>, localAddress?: string, body = BODY) =>
  send(`${s.url}/api/v1/alertmanager`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
    ...(localAddress ? { localAddress } : {}),
  });

describe('every webhook secret source has the same minimum, and the presented bytes are compared exactly', () => {
  it.each([
    ['an empty token file', ''],
    ['a token file of whitespace', ' \n\t\n'],
    ['a token file shorter than 16 characters', 'short-token\n'],
  ])('%s is refused at start', async (_scenario, content) => {
    const file = tokenFile(`t-${randomBytes(4).toString('hex')}`, content);
    await expect(start({ bearer_token_file: file })).rejects.toThrow(/bearer_token_file .*at least 16 characters/);
  });

  it('--check-config refuses an empty token file with exit status 2', () => {
    const file = tokenFile('empty-check', '');
    const config = path.join(dir, 'check.yaml');
    writeFileSync(
      config,
      stringify({
        broker_url: vhost.url,
        auth: { tokens: [] },
        remediation: { enabled: true, rules_file: RULES, webhook: { bearer_token_file: file } },
      }),
    );
    const r = spawnSync(process.execPath, ['--import', 'tsx', path.resolve('src/main.ts'), '--config', config, '--check-config'], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/at least 16 characters/);
  });

  it('Bearer with a trailing no-break space (which JS trim() would strip) is not the token', async () => {
    const token = randomBytes(24).toString('hex');
    const s = await start({ bearer_token_file: tokenFile('good', `${token}\n`) });
    expect(await rawPost(s, `Bearer ${token}`)).toBe(200);
    expect(await rawPost(s, `Bearer ${token}\xa0`)).toBe(401);
    expect(await rawPost(s, 'Bearer \xa0')).toBe(401);
  });
});

describe('the receiver takes JSON only, and an unauthenticated one only on loopback names', () => {
  it('a text/plain body (what a cross-site form can send) is refused with 415, with or without credentials', async () => {
    const token = randomBytes(24).toString('hex');
    const s = await start({ bearer_token_file: tokenFile('json-only', token) });
    expect((await post(s, { authorization: `Bearer ${token}`, 'content-type': 'text/plain' })).status).toBe(415);
    const insecure = await start({}, { insecure_no_auth: true });
    expect((await post(insecure, { 'content-type': 'text/plain' })).status).toBe(415);
    expect((await post(insecure, {})).status).toBe(200);
  });

  it('in insecure mode a request for a foreign Host (DNS rebinding) is refused', async () => {
    const s = await start({}, { insecure_no_auth: true });
    expect((await post(s, { host: `rebind.example:${s.port}` })).status).toBe(403);
  });
});

describe('webhook credentials cannot be guessed at full speed', () => {
  it('after 10 failures a client is answered 429 unchecked, while Alertmanager (right credentials, another client) is never delayed', async () => {
    const token = randomBytes(24).toString('hex');
    const s = await start({ bearer_token_file: tokenFile('throttle', token) });
    for (let i = 0; i < 10; i++)
      expect((await post(s, { authorization: `Bearer guess-${i}-${'x'.repeat(16)}` }, '127.0.0.21')).status).toBe(401);
    const throttled = await post(s, { authorization: `Bearer guess-11-${'x'.repeat(16)}` }, '127.0.0.21');
    expect(throttled.status).toBe(429);
    expect(Number(throttled.headers['retry-after'])).toBeGreaterThan(0);
    expect((await post(s, { authorization: `Bearer ${token}` }, '127.0.0.22')).status).toBe(200);
  });

  it('a basic-auth webhook password under 16 characters is warned about loudly at start', async () => {
    const s = await start({ basic_auth: { username: 'alertmanager', password: 'only-12-chars' } });
    const warning = s.logs.lines().find((l) => String(l.msg).includes('basic_auth.password is shorter than 16 characters'));
    expect(warning).toMatchObject({ level: 40 });
    expect((await post(s, { authorization: basicAuth('alertmanager', 'only-12-chars') })).status).toBe(200);
  });
});
