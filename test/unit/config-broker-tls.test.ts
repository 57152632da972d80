import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/load.js';

function load(argv: string[] = [], env: Record<string, string> = {}, file?: string) {
  return loadConfig({ argv, env, readFile: () => file ?? '' }).config!;
}

function problems(argv: string[], env: Record<string, string> = {}): string[] {
  try {
    load(argv, env);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

describe('broker TLS and Sentinel auth configuration', () => {
  it('verifies with the system CAs by default, and takes file paths from flags, env or YAML', () => {
    expect(load().broker_tls).toEqual({ verify: true });
    const c = load(
      [
        '--broker-url',
        'amqps://u:p@mq.example:5671/prod',
        '--broker-tls-ca-file',
        '/etc/ca.pem',
        '--broker-tls-server-name',
        'mq.internal',
      ],
      { CELERY_AUTOPILOT_BROKER_TLS_CERT_FILE: '/etc/c.pem', CELERY_AUTOPILOT_BROKER_TLS_KEY_FILE: '/etc/k.pem' },
    );
    expect(c.broker).toMatchObject({ kind: 'amqp', tls: true });
    expect(c.broker_tls).toEqual({
      ca_file: '/etc/ca.pem',
      cert_file: '/etc/c.pem',
      key_file: '/etc/k.pem',
      server_name: 'mq.internal',
      verify: true,
    });
    const y = load(['--config', 'x.yaml'], {}, 'broker_url: rediss://r.example:6380/0\nbroker_tls:\n  verify: false\n');
    expect(y.broker).toMatchObject({ kind: 'redis', tls: true });
    expect(y.broker_tls.verify).toBe(false);
  });

  it('refuses TLS settings on a broker URL without TLS, and a certificate without its key', () => {
    expect(problems(['--broker-url', 'amqp://h//', '--broker-tls-ca-file', '/etc/ca.pem'])).toEqual([
      'broker_tls is set but broker_url does not use TLS: use amqps:// or rediss://',
    ]);
    expect(problems(['--broker-url', 'redis://h/0', '--broker-tls-verify', 'false'])).toHaveLength(1);
    expect(problems(['--broker-url', 'rediss://h/0', '--broker-tls-cert-file', '/etc/c.pem'])).toEqual([
      'broker_tls: cert_file and key_file go together',
    ]);
  });

  it('keeps the Sentinel password in a Secret', () => {
    const c = load(
      [
        '--broker-url',
        'sentinel://s1:26379;sentinel://s2:26379',
        '--broker-transport-options-master-name',
        'mymaster',
        '--broker-transport-options-sentinel-username',
        'watcher',
      ],
      { CELERY_AUTOPILOT_BROKER_TRANSPORT_OPTIONS_SENTINEL_PASSWORD: 'sentinel-hunter2' },
    );
    expect(c.broker_transport_options.sentinel_username).toBe('watcher');
    expect(c.broker_transport_options.sentinel_password?.reveal()).toBe('sentinel-hunter2');
    expect(inspect(c, { depth: 10 })).not.toContain('sentinel-hunter2');
    expect(JSON.stringify(c)).not.toContain('sentinel-hunter2');
  });
});
