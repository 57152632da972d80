import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { parseBrokerUrl } from '../../src/config/broker-url.js';

function load(argv: string[] = [], env: Record<string, string> = {}, file?: string) {
  return loadConfig({ argv, env, readFile: () => file ?? '' });
}

function problems(argv: string[], env: Record<string, string> = {}, file?: string): string[] {
  try {
    load(argv, env, file);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

describe('configuration', () => {
  it('defaults: local RabbitMQ, port 9818 (not celery-exporter 9808), celery-exporter buckets', () => {
    const c = load().config!;
    expect(c.broker).toMatchObject({ kind: 'amqp', vhost: '/' });
    expect(c.port).toBe(9818);
    expect(c.metrics.prefix).toBe('celery_');
    expect(c.broker_transport_options.priority_steps).toEqual([0, 3, 6, 9]);
    expect(Object.isFrozen(c.metrics)).toBe(true);
  });

  it('precedence: file < environment < flags', () => {
    const c = load(
      ['--config', 'f.yaml', '--port', '3'],
      { CELERY_AUTOPILOT_PORT: '2', CELERY_AUTOPILOT_LOG_LEVEL: 'debug' },
      'port: 1\nlog_level: warn\nmetrics: {queues: [a]}',
    ).config!;
    expect([c.port, c.log_level, c.metrics.queues]).toEqual([3, 'debug', ['a']]);
  });

  it('lists, maps and numbers from flags', () => {
    const c = load([
      '--metrics-runtime-buckets',
      '0.1,1,10',
      '--metrics-static-labels',
      'env=prod,team=core',
      '--broker-url=redis://:pw@r:6380/3',
      '--broker-transport-options-global-keyprefix',
      'pfx:',
    ]).config!;
    expect(c.metrics.runtime_buckets).toEqual([0.1, 1, 10]);
    expect(c.metrics.static_labels).toEqual({ env: 'prod', team: 'core' });
    expect(c.broker).toMatchObject({ kind: 'redis', db: 3, node: { host: 'r', port: 6380 } });
    expect(c.broker_transport_options.global_keyprefix).toBe('pfx:');
  });

  it.each([
    [['--port', 'x'], {}, undefined, '--port: "x" is not a number'],
    [['--nope', '1'], {}, undefined, 'unknown flag --nope (see --help)'],
    [[], { CELERY_AUTOPILOT_FOO: '1' }, undefined, 'unknown environment variable CELERY_AUTOPILOT_FOO'],
    [['--config', 'c.yaml'], {}, 'bogus: 1', 'unknown key "bogus"'],
    [['--config', 'c.yaml'], {}, 'events: {prefetch: 0}', 'events.prefetch: Too small: expected number to be >=1'],
    [['--config', 'c.yaml'], {}, 'metrics: {runtime_buckets: [1, 0.5]}', 'metrics.runtime_buckets: buckets must be strictly increasing'],
    [['--config', 'c.yaml'], {}, '- just\n- a list', 'config file c.yaml: top level must be a mapping'],
    [
      ['--broker-url', 'http://x'],
      {},
      undefined,
      'broker_url: unsupported broker URL scheme "http://": use amqp://, amqps://, redis://, rediss:// or sentinel://',
    ],
    [['--broker-url', 'sentinel://s1:26379'], {}, undefined, 'broker_url: a sentinel:// URL needs broker_transport_options.master_name'],
    [
      ['--metrics-static-labels', 'bad-name=x'],
      {},
      undefined,
      'metrics.static_labels.bad-name: invalid key (not a valid Prometheus label name)',
    ],
    [['--log-level', 'loud'], {}, undefined, 'log_level: Invalid option: expected one of "trace"|"debug"|"info"|"warn"|"error"|"fatal"'],
  ])('rejects %j %j %j with a clear message', (argv, env, file, message) => {
    expect(problems(argv, env, file)).toContain(message);
  });

  it('task submission (tasks.submit): off by default, admin when on, globs from a flag, bad globs named', () => {
    expect(load().config!.tasks.submit).toEqual({ allow: [], role: 'admin', create_missing_queues: false });
    const c = load(['--tasks-submit-allow', 'reports.*,billing.retry_?', '--tasks-submit-role', 'operator']).config!;
    expect(c.tasks.submit).toMatchObject({ allow: ['reports.*', 'billing.retry_?'], role: 'operator' });
    expect(problems(['--tasks-submit-allow', 'tasks.add,rm -rf'])).toContain(
      'tasks.submit.allow.1: must be a task-name glob (letters, digits, _ . and the wildcards * ?)',
    );
  });

  it('reports every problem at once', () => {
    expect(problems(['--port', '99999', '--events-prefetch', '0'])).toHaveLength(2);
  });

  it('--check-config and --help are actions', () => {
    expect(load(['--check-config']).action).toBe('check-config');
    expect(load(['--help']).action).toBe('help');
  });

  it('never prints the broker password', () => {
    const c = load(['--broker-url', 'amqp://user:hunter2@mq:5672/prod']).config!;
    const rendered = [JSON.stringify(c), inspect(c, { depth: 10 }), String(c.broker.display)].join('\n');
    expect(rendered).not.toContain('hunter2');
    expect(c.broker.display).toBe('amqp://user:***@mq:5672/prod');
  });
});

describe('broker URLs as kombu reads them', () => {
  it.each([
    ['amqp://guest:guest@localhost:5672//', { kind: 'amqp', vhost: '/' }],
    ['amqp://guest:guest@localhost:5672/', { kind: 'amqp', vhost: '/' }],
    ['amqp://u:p@h/prod', { kind: 'amqp', vhost: 'prod' }],
    ['amqps://u:p@h:5671/%2F', { kind: 'amqp', vhost: '/' }],
    ['redis://localhost:6379/0', { kind: 'redis', db: 0, tls: false }],
    ['rediss://:secret@h:6380/2', { kind: 'redis', db: 2, tls: true }],
    ['redis://h', { kind: 'redis', db: 0 }],
    [
      'sentinel://s1:26379/1;sentinel://s2:26380',
      {
        kind: 'redis',
        db: 1,
        sentinels: [
          { host: 's1', port: 26379 },
          { host: 's2', port: 26380 },
        ],
      },
    ],
  ])('%s', (url, expected) => {
    expect(parseBrokerUrl(url)).toMatchObject(expected);
  });

  it('gives amqplib the "/" vhost encoded', () => {
    const b = parseBrokerUrl('amqp://guest:guest@localhost:5672//');
    expect(b.kind === 'amqp' && b.url.reveal()).toBe('amqp://guest:guest@localhost:5672/%2F');
  });

  it('rejects a non-numeric Redis db', () => {
    expect(() => parseBrokerUrl('redis://h/abc')).toThrow('Redis database must be a number 0-99, got "abc"');
  });
});
