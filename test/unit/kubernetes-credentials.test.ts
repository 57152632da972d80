import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify as stringifyYaml } from 'yaml';
import { kubeconfigCredentials, KubeCredentialsError } from '../../src/kubernetes/credentials.js';

describe('kubeconfig credentials', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cap-kubeconfig-'));
    await writeFile(path.join(dir, 'ca.pem'), 'CA PEM');
    await writeFile(path.join(dir, 'token'), 'file-token-1\n');
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const write = async (user: Record<string, unknown>, extra: Record<string, unknown> = {}) => {
    const file = path.join(dir, `kc-${Math.random().toString(36).slice(2)}`);
    await writeFile(
      file,
      stringifyYaml({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [
          { name: 'a', cluster: { server: 'https://a.example:6443/', 'certificate-authority': 'ca.pem' } },
          {
            name: 'b',
            cluster: { server: 'https://b.example', 'certificate-authority-data': Buffer.from('INLINE CA').toString('base64') },
          },
        ],
        users: [{ name: 'u', user }],
        contexts: [
          { name: 'one', context: { cluster: 'a', user: 'u', namespace: 'celery' } },
          { name: 'two', context: { cluster: 'b', user: 'u' } },
        ],
        'current-context': 'one',
        ...extra,
      }),
    );
    return file;
  };

  it('reads the current context: server, CA relative to the file, namespace, inline token', async () => {
    const c = kubeconfigCredentials(await write({ token: 'inline-token' }));
    expect(c.server).toBe('https://a.example:6443');
    expect(c.ca?.toString()).toBe('CA PEM');
    expect(c.namespace).toBe('celery');
    expect((await c.token())?.reveal()).toBe('inline-token');
    // Never printed.
    expect(String(await c.token())).toBe('<secret>');
  });

  it('kubernetes.context picks another context; inline CA data; tokenFile is read on every call', async () => {
    const file = await write({ tokenFile: 'token' });
    const c = kubeconfigCredentials(file, 'two');
    expect(c.server).toBe('https://b.example');
    expect(c.ca?.toString()).toBe('INLINE CA');
    expect((await c.token())?.reveal()).toBe('file-token-1');
    await writeFile(path.join(dir, 'token'), 'file-token-2\n');
    expect((await c.token())?.reveal()).toBe('file-token-2');
  });

  it.each([
    ['exec plugins', { exec: { command: 'aws' } }, {}, /exec and auth-provider plugins are not supported/],
    ['no credentials', {}, {}, /no token, tokenFile or client certificate/],
    ['a certificate without its key', { 'client-certificate-data': 'eA==' }, {}, /needs its key/],
    ['an unknown context', { token: 't' }, { 'current-context': 'three' }, /no context named "three"/],
    ['a plain http server', { token: 't' }, { clusters: [{ name: 'a', cluster: { server: 'http://a' } }] }, /must be an https:\/\/ URL/],
  ])('refuses %s with a clear error', async (_what, user, extra, message) => {
    const file = await write(user, extra);
    expect(() => kubeconfigCredentials(file)).toThrow(KubeCredentialsError);
    expect(() => kubeconfigCredentials(file)).toThrow(message);
  });

  it('a missing file names the key', () => {
    expect(() => kubeconfigCredentials(path.join(dir, 'nope'))).toThrow(/kubernetes.kubeconfig .*nope/);
  });
});
