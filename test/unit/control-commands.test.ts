import { describe, expect, it } from 'vitest';
import { roleAtLeast } from '../../src/auth/roles.js';
import { COMMAND_NAMES, COMMANDS, prepareCommand, type CommandName, type Role } from '../../src/control/commands.js';
import { CommandValidationError } from '../../src/celery/validators.js';
import { readFixture } from '../support/fixtures.js';

interface PidboxCapture {
  calls: Record<string, { request: { body_raw: string } }>;
}

const captured = readFixture<PidboxCapture>('celery-5.2.6/amqp_pidbox.json').calls;
const capturedArguments = (method: string): Record<string, unknown> =>
  (JSON.parse(captured[method]!.request.body_raw) as { arguments: Record<string, unknown> }).arguments;

describe('control commands', () => {
  it('registers every command once, with a description and a role', () => {
    expect([...COMMANDS.keys()].sort()).toEqual([...COMMAND_NAMES].sort());
    for (const [name, definition] of COMMANDS) {
      expect(definition.name).toBe(name);
      expect(definition.description.length).toBeGreaterThan(10);
    }
  });

  // What our API takes → what Celery 5.2.6's own client put on the wire (amqp_pidbox.json).
  it.each<[CommandName, Record<string, unknown>]>([
    ['ping', {}],
    ['stats', {}],
    ['active_queues', {}],
    ['registered', {}],
    ['active', {}],
    ['reserved', {}],
    ['scheduled', {}],
    ['revoked', {}],
    ['pool_grow', { n: 2 }],
    ['pool_shrink', { n: 1 }],
    ['autoscale', { max: 4, min: 1 }],
    ['cancel_consumer', { queue: 'extra_q' }],
    ['rate_limit', { task_name: 'tasks.add', rate_limit: '10/m' }],
    ['time_limit', { task_name: 'tasks.add', soft: 10, hard: 20 }],
    ['revoke', { task_id: 'aaaaaaaa-0000-0000-0000-000000000001' }],
    ['shutdown', {}],
    ['pool_restart', {}],
  ])('%s sends exactly the arguments Celery sends', (name, api) => {
    expect(prepareCommand(name, api).arguments).toStrictEqual(capturedArguments(name));
  });

  it('add_consumer flattens its options into the arguments like Control.add_consumer', () => {
    // The amqp capture sent a nested "options" (a mistake the capture notes); the later runs in
    // control_replies_by_pool.json flatten them, which is what Celery's client does.
    const later = readFixture<{ configs: Record<string, Record<string, { arguments: unknown }>> }>(
      'celery-5.2.6/control_replies_by_pool.json',
    );
    const expected = later.configs['prefork_redis_db0 (-E -c 2)']!.add_consumer!.arguments;
    const prepared = prepareCommand('add_consumer', {
      queue: 'extra_q',
      exchange: 'extra_x',
      exchange_type: 'direct',
      routing_key: 'extra_rk',
      options: { queue_durable: false, queue_auto_delete: true },
    });
    expect(prepared.arguments).toStrictEqual(expected);
  });

  it.each<[string, CommandName, unknown, Record<string, unknown>]>([
    ['pool_grow defaults n to 1, as Celery does', 'pool_grow', {}, { n: 1 }],
    [
      'add_consumer with only a queue (worker picks exchange and key)',
      'add_consumer',
      { queue: 'q1' },
      { queue: 'q1', exchange: null, exchange_type: 'direct', routing_key: null },
    ],
    [
      'rate_limit "" removes the limit',
      'rate_limit',
      { task_name: 'tasks.add', rate_limit: '' },
      { task_name: 'tasks.add', rate_limit: null },
    ],
    [
      'rate_limit 0 removes the limit',
      'rate_limit',
      { task_name: 'tasks.add', rate_limit: 0 },
      { task_name: 'tasks.add', rate_limit: null },
    ],
    [
      'revoke a list with terminate and a signal',
      'revoke',
      { task_id: ['aaaaaaaa-0000-0000-0000-000000000002', 'aaaaaaaa-0000-0000-0000-000000000002'], terminate: true, signal: 'SIGKILL' },
      { task_id: ['aaaaaaaa-0000-0000-0000-000000000002'], terminate: true, signal: 'SIGKILL' },
    ],
    [
      'pool_restart with modules and reload',
      'pool_restart',
      { modules: ['proj.tasks'], reload: true },
      { modules: ['proj.tasks'], reload: true, reloader: null },
    ],
    [
      'registered with taskinfoitems',
      'registered',
      { taskinfoitems: ['soft_time_limit', 'time_limit'] },
      { taskinfoitems: ['soft_time_limit', 'time_limit'] },
    ],
    ['conf with defaults', 'conf', { with_defaults: true }, { with_defaults: true }],
    ['missing arguments are {}', 'ping', undefined, {}],
    [
      'time_limit both null removes the limits',
      'time_limit',
      { task_name: 'tasks.sleep', soft: null, hard: null },
      { task_name: 'tasks.sleep', hard: null, soft: null },
    ],
    [
      'time_limit with fractional seconds',
      'time_limit',
      { task_name: 'tasks.sleep', soft: 0.5, hard: 1.5 },
      { task_name: 'tasks.sleep', hard: 1.5, soft: 0.5 },
    ],
  ])('%s', (_scenario, name, api, wire) => {
    expect(prepareCommand(name, api).arguments).toStrictEqual(wire);
  });

  it.each<[string, unknown, unknown, string]>([
    ['unknown command', 'no_such_command', {}, 'command: unknown command; known: ping, stats'],
    ['command name that is not a string', 42, {}, 'command: unknown command'],
    ['arguments to a read', 'stats', { verbose: true }, 'takes no arguments, got "verbose"'],
    ['arguments not an object', 'ping', 'x', 'arguments: must be an object'],
    ['arguments as an array', 'ping', [], 'arguments: must be an object'],
    ['unknown key', 'pool_grow', { n: 1, force: true }, 'unknown argument "force"; allowed: n'],
    ['pool_grow n 0', 'pool_grow', { n: 0 }, 'n: must be an integer from 1 to 50'],
    ['pool_grow n 51', 'pool_grow', { n: 51 }, 'n: must be an integer from 1 to 50'],
    ['pool_grow n fractional', 'pool_grow', { n: 1.5 }, 'n: must be an integer from 1 to 50'],
    ['pool_shrink n as a string', 'pool_shrink', { n: '1' }, 'n: must be an integer from 1 to 50'],
    ['autoscale min above max', 'autoscale', { max: 2, min: 3 }, 'min: must not be above max'],
    ['autoscale above the ceiling', 'autoscale', { max: 1001, min: 1 }, 'max: must be an integer from 1 to 1000'],
    ['autoscale negative min', 'autoscale', { max: 2, min: -1 }, 'min: must be an integer from 0 to 1000'],
    ['autoscale max only', 'autoscale', { max: 2 }, 'needs both max and min'],
    ['add_consumer without queue', 'add_consumer', {}, 'queue: must be a queue name (a string)'],
    [
      'add_consumer bad exchange type',
      'add_consumer',
      { queue: 'q', exchange_type: 'x-delayed' },
      'exchange_type: must be one of direct, topic, fanout, headers',
    ],
    [
      'add_consumer unknown option',
      'add_consumer',
      { queue: 'q', options: { queue_arguments: { 'x-max-priority': 10 } } },
      'unknown argument "queue_arguments" in options',
    ],
    [
      'add_consumer option not boolean',
      'add_consumer',
      { queue: 'q', options: { queue_durable: 'yes' } },
      'options.queue_durable: must be true or false',
    ],
    ['add_consumer on the event exchange', 'add_consumer', { queue: 'q', exchange: 'celeryev' }, 'exchange: is reserved'],
    ['rate_limit bad string', 'rate_limit', { task_name: 'tasks.add', rate_limit: 'abc' }, 'rate_limit: must be a rate like 10/m'],
    ['rate_limit missing', 'rate_limit', { task_name: 'tasks.add' }, 'rate_limit: is required'],
    ['rate_limit bad task', 'rate_limit', { task_name: 'tasks.add"', rate_limit: '1/s' }, 'task_name: must be a task name'],
    ['time_limit soft only', 'time_limit', { task_name: 'tasks.add', soft: 10 }, 'needs both soft and hard'],
    ['time_limit soft null only', 'time_limit', { task_name: 'tasks.add', soft: null, hard: 10 }, 'soft: must be a number of seconds'],
    ['time_limit soft above hard', 'time_limit', { task_name: 'tasks.add', soft: 20, hard: 10 }, 'soft: must not be above hard'],
    [
      'time_limit zero',
      'time_limit',
      { task_name: 'tasks.add', soft: 0, hard: 10 },
      'soft: must be a number of seconds above 0 and at most 86400',
    ],
    [
      'time_limit beyond a day',
      'time_limit',
      { task_name: 'tasks.add', soft: 10, hard: 86401 },
      'hard: must be a number of seconds above 0',
    ],
    [
      'time_limit sub-millisecond',
      'time_limit',
      { task_name: 'tasks.add', soft: 0.0001, hard: 1 },
      'soft: must have at most millisecond precision',
    ],
    ['revoke without task id', 'revoke', {}, 'task_id: must be a task id'],
    ['revoke empty list', 'revoke', { task_id: [] }, 'task_id: must not be empty'],
    [
      'revoke too many ids',
      'revoke',
      { task_id: Array.from({ length: 101 }, () => 'aaaaaaaa-0000-0000-0000-000000000001') },
      'task_id: must hold at most 100 items',
    ],
    ['revoke bad id in a list', 'revoke', { task_id: ['aaaaaaaa-0000-0000-0000-000000000001', 'x\ny'] }, 'task_id[1]: must be a task id'],
    [
      'revoke signal number',
      'revoke',
      { task_id: 'aaaaaaaa-0000-0000-0000-000000000001', terminate: true, signal: 9 },
      'signal: must be one of SIGTERM',
    ],
    [
      'revoke signal without terminate',
      'revoke',
      { task_id: 'aaaaaaaa-0000-0000-0000-000000000001', signal: 'SIGKILL' },
      'signal: only applies with terminate: true',
    ],
    [
      'revoke terminate not boolean',
      'revoke',
      { task_id: 'aaaaaaaa-0000-0000-0000-000000000001', terminate: 'yes' },
      'terminate: must be true or false',
    ],
    ['shutdown with arguments', 'shutdown', { now: true }, 'takes no arguments'],
    ['pool_restart module path', 'pool_restart', { modules: ['../evil'] }, 'modules[0]: must be a module name'],
    ['pool_restart with a reloader', 'pool_restart', { reloader: 'x' }, 'unknown argument "reloader"'],
    ['registered unknown info item', 'registered', { taskinfoitems: ['__class__'] }, 'taskinfoitems[0]: must be one of rate_limit'],
  ])('refuses %s', (_scenario, name, api, message) => {
    expect(() => prepareCommand(name, api)).toThrow(CommandValidationError);
    expect(() => prepareCommand(name, api)).toThrow(message);
  });

  it.each<[string, CommandName, Record<string, unknown>, Role]>([
    ['inspect reads', 'stats', {}, 'viewer'],
    ['conf', 'conf', {}, 'viewer'],
    ['pool_grow', 'pool_grow', { n: 1 }, 'operator'],
    ['autoscale', 'autoscale', { max: 2, min: 1 }, 'operator'],
    ['add_consumer', 'add_consumer', { queue: 'q' }, 'operator'],
    ['rate_limit', 'rate_limit', { task_name: 'tasks.add', rate_limit: '1/s' }, 'operator'],
    ['revoke', 'revoke', { task_id: 'aaaaaaaa-0000-0000-0000-000000000001' }, 'operator'],
    ['revoke with terminate', 'revoke', { task_id: 'aaaaaaaa-0000-0000-0000-000000000001', terminate: true }, 'admin'],
    ['shutdown', 'shutdown', {}, 'admin'],
    ['pool_restart', 'pool_restart', {}, 'admin'],
  ])('%s needs the %s role', (_scenario, name, api, role) => {
    expect(prepareCommand(name, api).role).toBe(role);
  });

  it('orders roles viewer < operator < admin', () => {
    expect(roleAtLeast('admin', 'operator')).toBe(true);
    expect(roleAtLeast('operator', 'operator')).toBe(true);
    expect(roleAtLeast('viewer', 'operator')).toBe(false);
    expect(roleAtLeast('operator', 'admin')).toBe(false);
  });

  it('sends only shutdown as a cast', () => {
    expect([...COMMANDS.values()].filter((d) => !d.reply).map((d) => d.name)).toEqual(['shutdown']);
  });

  it('freezes the wire arguments so nothing can change them between validation and sending', () => {
    const prepared = prepareCommand('pool_grow', { n: 2 });
    expect(Object.isFrozen(prepared.arguments)).toBe(true);
  });
});
