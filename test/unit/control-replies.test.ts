import { describe, expect, it } from 'vitest';
import { mapReply, type ErrorKind } from '../../src/control/replies.js';
import { readFixture } from '../support/fixtures.js';

interface Capture {
  arguments: unknown;
  reply: Array<Record<string, unknown>>;
}

const configs = readFixture<{ configs: Record<string, Record<string, Capture>> }>('celery-5.2.6/control_replies_by_pool.json').configs;

/** The fixture's step names → the pidbox method each one sent. */
const methodOf = (step: string): string =>
  ({
    stats_before: 'stats',
    stats_after_grow: 'stats',
    stats_after_shrink: 'stats',
    stats_end: 'stats',
    active_queues_after_add: 'active_queues',
    active_queues_after_cancel: 'active_queues',
    rate_limit_bad: 'rate_limit',
    rate_limit_unknown_task: 'rate_limit',
    revoke_terminate_unknown: 'revoke',
    enable_events2: 'enable_events',
    unknown_command: 'no_such_command',
  })[step] ?? step;

/** What each captured answer must map to, by worker configuration (the pool support matrix, §B5). */
function expectedKind(config: string, step: string): ErrorKind | 'ok' {
  const pool = config.startsWith('solo')
    ? 'solo'
    : config.startsWith('threads')
      ? 'threads'
      : config.includes('autoscale')
        ? 'autoscale'
        : 'prefork';
  switch (step) {
    case 'pool_grow':
    case 'pool_shrink':
      return pool === 'solo' || pool === 'threads' ? 'unsupported_pool' : pool === 'autoscale' ? 'autoscale_enabled' : 'ok';
    case 'autoscale':
      return pool === 'autoscale' ? 'ok' : 'autoscale_disabled';
    case 'pool_restart':
      return config.includes('pool_restarts') ? 'ok' : 'pool_restarts_disabled';
    case 'rate_limit_bad':
      return 'invalid_rate_limit';
    case 'rate_limit_unknown_task':
      return 'unknown_task';
    case 'unknown_command':
      return 'unknown_command';
    default:
      return 'ok';
  }
}

const cases = Object.entries(configs).flatMap(([config, steps]) =>
  Object.entries(steps)
    .filter(([, capture]) => capture.reply.length === 1)
    .map(([step, capture]) => {
      const [worker, value] = Object.entries(capture.reply[0]!)[0]!;
      return { name: `${config} ${step}`, config, step, worker, value };
    }),
);

describe('mapping captured worker answers', () => {
  it('covers every configuration of the capture', () => {
    expect(new Set(cases.map((c) => c.config)).size).toBe(Object.keys(configs).length);
    expect(cases.length).toBeGreaterThan(180);
  });

  it.each(cases)('$name', ({ config, step, value }) => {
    const mapped = mapReply(methodOf(step), value);
    const kind = expectedKind(config, step);
    if (kind === 'ok') {
      expect(mapped).toMatchObject({ status: 'ok', reply: value });
    } else {
      expect(mapped).toMatchObject({ status: 'error', kind, reply: value });
      expect(mapped.message).toBeTruthy();
    }
  });

  it.each<[string, string, unknown, ErrorKind, string]>([
    [
      'solo pool_grow',
      'pool_grow',
      { error: "AttributeError(\"'TaskPool' object has no attribute 'grow'\")" },
      'unsupported_pool',
      "pool_grow is not supported by this worker's pool",
    ],
    [
      'threads pool_shrink',
      'pool_shrink',
      { error: "AttributeError(\"'TaskPool' object has no attribute 'shrink'\")" },
      'unsupported_pool',
      'pool_shrink is not supported',
    ],
    [
      'autoscaled pool_grow',
      'pool_grow',
      { error: 'pool_grow is not supported with autoscale. Adjust autoscale range instead.' },
      'autoscale_enabled',
      'change its autoscale range instead',
    ],
    [
      'autoscale without --autoscale',
      'autoscale',
      { error: "ValueError('Autoscale not enabled')" },
      'autoscale_disabled',
      'not started with --autoscale',
    ],
    [
      'pool_restart without worker_pool_restarts',
      'pool_restart',
      { error: "ValueError('Pool restarts not enabled')" },
      'pool_restarts_disabled',
      'without worker_pool_restarts',
    ],
    ['time_limit for an unknown task', 'time_limit', { error: 'unknown task' }, 'unknown_task', 'no task registered under that name'],
    [
      'bad rate string',
      'rate_limit',
      { error: 'Invalid rate limit string: ValueError("could not convert string to float: \'abc\'")' },
      'invalid_rate_limit',
      "could not convert string to float: 'abc'",
    ],
    ['unknown command', 'enable_magic', { error: "KeyError('enable_magic')" }, 'unknown_command', 'does not know the command enable_magic'],
    [
      'a KeyError from inside a known handler',
      'stats',
      { error: "KeyError('pool')" },
      'worker_error',
      "the worker failed: KeyError('pool')",
    ],
    [
      'a shrink of a busy pool',
      'pool_shrink',
      { error: 'ValueError("Can\'t shrink pool. All processes busy!")' },
      'pool_busy',
      'every pool process is busy',
    ],
    [
      'the same words from another command',
      'stats',
      { error: 'ValueError("Can\'t shrink pool. All processes busy!")' },
      'worker_error',
      'All processes busy',
    ],
    ['an error that is not a string', 'stats', { error: { code: 1 } }, 'worker_error', '{"code":1}'],
  ])('%s → %s', (_scenario, command, value, kind, message) => {
    const mapped = mapReply(command, value);
    expect(mapped).toMatchObject({ status: 'error', kind, reply: value });
    expect(mapped.message).toContain(message);
  });

  it.each<[string, unknown, string | undefined]>([
    ['an ok answer keeps its text', { ok: 'pool will grow' }, 'pool will grow'],
    ['heartbeat answers JSON null', null, undefined],
    ['an inspect list', ['tasks.add [rate_limit=10/m]'], undefined],
    ['a dict that merely has an error field among others', { error: 'x', total: {} }, undefined],
    ['an empty query_task answer', {}, undefined],
  ])('%s', (_scenario, value, message) => {
    expect(mapReply('x', value)).toEqual({ status: 'ok', reply: value, ...(message ? { message } : {}) });
  });
});
