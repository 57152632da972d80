import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { Secret } from '../../src/config/secret.js';
import { redisServerOptions } from '../../src/transport/redis/client-options.js';
import { brokerConnections } from '../../src/transport/connections.js';

/**
 * Every connection reaches the broker from one place (transport/connections.ts): the same TLS
 * files and Sentinel credentials for events, control, task submission, the result backend and
 * shared remediation state. (tasks-tls.test.ts drives the TLS half against real brokers.)
 */

const pem = (() => {
  const dir = mkdtempSync(path.join(tmpdir(), 'cap-connections-'));
  const at = (name: string) => {
    const file = path.join(dir, name);
    writeFileSync(file, `-----${name}-----\n`);
    return file;
  };
  return { ca: at('ca.pem'), cert: at('client.pem'), key: at('client.key') };
})();

const configWith = (argv: string[], env: Record<string, string> = {}) => loadConfig({ argv, env, readFile: () => '' }).config!;
const tlsArgs = [
  '--broker-tls-ca-file',
  pem.ca,
  '--broker-tls-cert-file',
  pem.cert,
  '--broker-tls-key-file',
  pem.key,
  '--broker-tls-server-name',
  'broker.test',
];

describe('broker connections', () => {
  it('RabbitMQ over TLS: the URL and the broker_tls files, read once for every connection', () => {
    const config = configWith(['--broker-url', 'amqps://u:p@10.0.0.1:5671/prod', ...tlsArgs]);
    const { broker } = brokerConnections(config);
    expect(broker.kind).toBe('amqp');
    if (broker.kind !== 'amqp') return;
    expect(broker.server.url).toBe('amqps://u:p@10.0.0.1:5671/prod');
    expect(broker.server.tls).toMatchObject({ servername: 'broker.test', rejectUnauthorized: true });
    expect(broker.server.tls?.ca?.toString()).toBe('-----ca.pem-----\n');
    expect(broker.server.tls?.cert?.toString()).toBe('-----client.pem-----\n');
    // The same options (one read of the files) for every caller of the same config.
    expect(brokerConnections(config).broker).toBe(broker);
    // A rediss:// result backend on another host is reached with the same files, but its
    // certificate is checked against its own host, not the broker's server_name.
    const results = brokerConnections(config).redisAt(new Secret('rediss://:pw@10.0.0.2:6380/3'));
    expect(results).toMatchObject({ host: '10.0.0.2', port: 6380, db: 3, tls: true, password: 'pw' });
    expect(results.tlsOptions).toMatchObject({ rejectUnauthorized: true });
    expect(results.tlsOptions?.ca).toBe(broker.server.tls?.ca);
    expect(results.tlsOptions?.cert).toBe(broker.server.tls?.cert);
    expect(results.tlsOptions).not.toHaveProperty('servername');
    // One on the broker's own host is the broker's server: its certificate carries server_name.
    expect(brokerConnections(config).redisAt(new Secret('rediss://10.0.0.1:6380/3')).tlsOptions).toBe(broker.server.tls);
    expect(brokerConnections(config).redisAt(new Secret('redis://10.0.0.2/1'))).not.toHaveProperty('tlsOptions');
  });

  it('Redis over Sentinel: the master name and the sentinels’ own AUTH reach every connection’s ioredis options', () => {
    const config = configWith(
      [
        '--broker-url',
        'sentinel://:masterpw@s1:26379/2;sentinel://s2:26380',
        '--broker-transport-options-master-name',
        'mymaster',
        '--broker-transport-options-sentinel-username',
        'watcher',
      ],
      { CELERY_AUTOPILOT_BROKER_TRANSPORT_OPTIONS_SENTINEL_PASSWORD: 'sentinel-pw' },
    );
    const { broker } = brokerConnections(config);
    if (broker.kind !== 'redis') throw new Error('expected a Redis broker');
    const options = redisServerOptions(broker.server, 'celery-autopilot-publisher', 5_000);
    expect(options).toMatchObject({
      sentinels: [
        { host: 's1', port: 26379 },
        { host: 's2', port: 26380 },
      ],
      name: 'mymaster',
      role: 'master',
      sentinelUsername: 'watcher',
      sentinelPassword: 'sentinel-pw',
      password: 'masterpw',
      db: 2,
      connectionName: 'celery-autopilot-publisher',
    });
  });
});
