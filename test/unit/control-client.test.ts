import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { answeredCommand, ControlClient, type ControlObserver, type Targets } from '../../src/control/client.js';
import { CommandValidationError } from '../../src/celery/validators.js';
import {
  BrokerUnavailableError,
  type BroadcastOptions,
  type BrokerTransport,
  type ControlReply,
  type ControlRequest,
  type QueueDepth,
} from '../../src/transport/transport.js';
import { readFixture } from '../support/fixtures.js';

/** A transport that records every broadcast and answers from a script: pure logic, no broker. */
class RecordingTransport implements BrokerTransport {
  readonly kind = 'amqp' as const;
  connected = true;
  readonly sent: Array<{ request: ControlRequest; options: BroadcastOptions }> = [];

  constructor(private readonly answer: (request: ControlRequest) => ControlReply[] = () => []) {}

  start(): void {}
  isConnected(): boolean {
    return this.connected;
  }
  async broadcast(request: ControlRequest, options: BroadcastOptions): Promise<ControlReply[]> {
    if (!this.connected) throw new BrokerUnavailableError();
    this.sent.push({ request, options });
    return this.answer(request);
  }
  async queueDepths(): Promise<QueueDepth[]> {
    return [];
  }
  async purgeQueue(): Promise<number> {
    return 0;
  }
  async close(): Promise<void> {}

  methods(): string[] {
    return this.sent.map((s) => s.request.method);
  }
}

/** Answers as the named workers would: `answers[worker][method]`, missing means silence. */
function workersAnswering(answers: Record<string, Record<string, unknown>>): (request: ControlRequest) => ControlReply[] {
  return (request) =>
    Object.entries(answers)
      .filter(([worker]) => request.destination === null || request.destination.includes(worker))
      .filter(([, byMethod]) => request.method in byMethod)
      .map(([worker, byMethod]) => ({ worker, value: byMethod[request.method] }));
}

function setup(answer?: (request: ControlRequest) => ControlReply[], options: { confirmTimeoutMs?: number } = {}) {
  const transport = new RecordingTransport(answer);
  const observed: Array<[string, string]> = [];
  const observe: ControlObserver = (command, outcome) => observed.push([command, outcome]);
  const clock = new ManualClock();
  const client = new ControlClient(
    transport,
    {
      timeoutMs: 1000,
      confirmTimeoutMs: options.confirmTimeoutMs ?? 8000,
      confirmIntervalMs: 500,
      clock,
      sleep: async (ms) => clock.advance(ms),
    },
    observe,
  );
  return { transport, client, observed, clock };
}

const A = 'a@host';
const B = 'b@host';
const C = 'c@host';

describe('ControlClient', () => {
  describe('refuses commands without a destination', () => {
    it.each<[string, unknown]>([
      ['an empty worker list', { workers: [] }],
      ['no target at all', {}],
      ['a missing targets object', undefined],
      ['workers that is not a list', { workers: 'a@host' }],
      ['all: false', { all: false }],
      ['a pattern matching every worker', { pattern: '*' }],
      ['two kinds of target at once', { workers: [A], pattern: 'a*' }],
      ['an unknown target key', { destination: null }],
      ['an invalid worker name in the list', { workers: [A, 'b@host"]'] }],
    ])('%s: nothing published, counted as invalid', async (_scenario, targets) => {
      const { client, transport, observed } = setup();
      await expect(client.run('pool_grow', { n: 1 }, targets as Targets)).rejects.toThrow(CommandValidationError);
      expect(transport.sent).toEqual([]);
      expect(observed).toEqual([['pool_grow', 'invalid']]);
    });

    it('sends destination null only when all workers were asked for explicitly', async () => {
      const { client, transport } = setup(workersAnswering({ [A]: { ping: { ok: 'pong' } }, [B]: { ping: { ok: 'pong' } } }));
      const result = await client.run('ping', {}, { all: true });
      expect(transport.sent).toHaveLength(1);
      expect(transport.sent[0]!.request).toEqual({ method: 'ping', arguments: {}, destination: null });
      expect(transport.sent[0]!.options).toEqual({ reply: true, timeoutMs: 1000 });
      expect(result.destination).toBeNull();
      expect(result.results.map((r) => [r.worker, r.status])).toEqual([
        [A, 'ok'],
        [B, 'ok'],
      ]);
    });
  });

  it('refuses bad arguments and unknown commands before publishing, with a bounded metric label', async () => {
    const { client, transport, observed } = setup();
    await expect(client.run('pool_grow', { n: 500 }, { workers: [A] })).rejects.toThrow('n: must be an integer from 1 to 50');
    await expect(client.run('rm -rf', {}, { workers: [A] })).rejects.toThrow(CommandValidationError);
    await expect(client.run('ping', {}, { workers: [A] }, { timeoutMs: 10 })).rejects.toThrow('timeoutMs');
    expect(transport.sent).toEqual([]);
    expect(observed).toEqual([
      ['pool_grow', 'invalid'],
      ['unknown', 'invalid'],
      ['ping', 'invalid'],
    ]);
  });

  it('a dry run publishes nothing and shows exactly what would be sent', async () => {
    const { client, transport, observed } = setup();
    const result = await client.run(
      'add_consumer',
      { queue: 'reports', options: { queue_durable: true } },
      { workers: [A, B, A] },
      { dryRun: true, confirm: true },
    );
    expect(transport.sent).toEqual([]);
    expect(result).toEqual({
      command: 'add_consumer',
      arguments: { queue: 'reports', exchange: null, exchange_type: 'direct', routing_key: null, queue_durable: true },
      destination: [A, B],
      role: 'operator',
      dryRun: true,
      outcome: 'dry_run',
      results: [
        { worker: A, status: 'dry_run' },
        { worker: B, status: 'dry_run' },
      ],
    });
    expect(observed).toEqual([['add_consumer', 'dry_run']]);
  });

  it('a dry run by pattern lists nobody and still publishes nothing', async () => {
    const { client, transport } = setup();
    const result = await client.run('shutdown', {}, { pattern: 'web-*@*' }, { dryRun: true });
    expect(transport.sent).toEqual([]);
    expect(result).toMatchObject({ destination: null, pattern: 'web-*@*', results: [], outcome: 'dry_run', role: 'admin' });
  });

  it('reports ok, mapped errors and no_reply per named worker, in the order given', async () => {
    const { client, transport, observed } = setup(
      workersAnswering({
        [A]: { pool_grow: { ok: 'pool will grow' } },
        [B]: { pool_grow: { error: "AttributeError(\"'TaskPool' object has no attribute 'grow'\")" } },
      }),
    );
    const result = await client.run('pool_grow', { n: 2 }, { workers: [C, B, A] }, { timeoutMs: 300 });
    expect(transport.sent).toEqual([
      { request: { method: 'pool_grow', arguments: { n: 2 }, destination: [C, B, A] }, options: { reply: true, timeoutMs: 300 } },
    ]);
    expect(result.outcome).toBe('partial');
    expect(result.results).toEqual([
      { worker: C, status: 'no_reply', message: 'no reply within 300 ms' },
      {
        worker: B,
        status: 'error',
        kind: 'unsupported_pool',
        message: expect.stringContaining('pool_grow is not supported') as string,
        reply: { error: "AttributeError(\"'TaskPool' object has no attribute 'grow'\")" },
      },
      { worker: A, status: 'ok', message: 'pool will grow', reply: { ok: 'pool will grow' } },
    ]);
    expect(observed).toEqual([['pool_grow', 'partial']]);
  });

  it.each<[string, Record<string, Record<string, unknown>>, string]>([
    ['every worker ok', { [A]: { stats: {} }, [B]: { stats: {} } }, 'ok'],
    ['nobody answered', {}, 'no_reply'],
    ['one error, one silent', { [A]: { stats: { error: 'boom' } } }, 'error'],
  ])('outcome when %s', async (_scenario, answers, outcome) => {
    const { client, observed } = setup(workersAnswering(answers));
    const result = await client.run('stats', {}, { workers: [A, B] });
    expect(result.outcome).toBe(outcome);
    expect(observed).toEqual([['stats', outcome]]);
  });

  it('addresses a glob pattern with destination null and lists only the workers that answered', async () => {
    const { client, transport } = setup(() => [
      { worker: 'web-2@h', value: { ok: 'pong' } },
      { worker: 'web-1@h', value: { ok: 'pong' } },
      { worker: 'web-1@h', value: { error: 'a second process with the same name' } },
    ]);
    const result = await client.run('ping', {}, { pattern: 'web-*@h' });
    expect(transport.sent[0]!.request).toEqual({ method: 'ping', arguments: {}, destination: null, pattern: 'web-*@h', matcher: 'glob' });
    expect(result.pattern).toBe('web-*@h');
    expect(result.results).toEqual([
      { worker: 'web-1@h', status: 'ok', message: 'pong', reply: { ok: 'pong' } },
      { worker: 'web-2@h', status: 'ok', message: 'pong', reply: { ok: 'pong' } },
    ]);
  });

  it('sends shutdown as a cast and reports each named worker as sent', async () => {
    const { client, transport, observed } = setup();
    const result = await client.run('shutdown', {}, { workers: [A] });
    expect(transport.sent).toEqual([
      { request: { method: 'shutdown', arguments: {}, destination: [A] }, options: { reply: false, timeoutMs: 1000 } },
    ]);
    expect(result.results).toEqual([{ worker: A, status: 'sent' }]);
    expect(result.outcome).toBe('sent');
    expect(observed).toEqual([['shutdown', 'sent']]);
  });

  it('fails fast with BrokerUnavailableError while the broker is down, and counts it', async () => {
    const { client, transport, observed } = setup();
    transport.connected = false;
    await expect(client.run('rate_limit', { task_name: 'tasks.add', rate_limit: '1/s' }, { workers: [A] })).rejects.toThrow(
      BrokerUnavailableError,
    );
    expect(transport.sent).toEqual([]);
    expect(observed).toEqual([['rate_limit', 'broker_unavailable']]);
  });

  it('ping tells which named workers answer now', async () => {
    const { client, transport } = setup(workersAnswering({ [A]: { ping: { ok: 'pong' } } }));
    expect(await client.ping([A, B], 200)).toEqual(
      new Map([
        [A, true],
        [B, false],
      ]),
    );
    expect(transport.sent[0]).toEqual({
      request: { method: 'ping', arguments: {}, destination: [A, B] },
      options: { reply: true, timeoutMs: 200 },
    });
    expect(await client.ping([])).toEqual(new Map());
    expect(transport.sent).toHaveLength(1);
    await expect(client.ping(['*'])).rejects.toThrow(CommandValidationError);
  });

  describe('confirmation', () => {
    type ProbeStep = [seconds: number, what: string, observed: unknown];
    const steps = readFixture<{ pool_grow_probe_prefork_redis: ProbeStep[] }>(
      'celery-5.2.6/control_replies_by_pool.json',
    ).pool_grow_probe_prefork_redis;
    const growAt = steps.find(([, what]) => what === 'pool_grow(2)')![0];

    /** Replays the captured stats of a real prefork worker around pool_grow(2), on the manual clock. */
    function replayGrow(clock: ManualClock) {
      let sentAt: number | undefined;
      return (request: ControlRequest): ControlReply[] => {
        if (request.method === 'pool_grow') {
          sentAt = clock.nowMs();
          return [{ worker: 'capr@vm', value: { ok: 'pool will grow' } }];
        }
        const since = sentAt === undefined ? 0 : growAt + (clock.nowMs() - sentAt) / 1000;
        const stats = steps.filter(([t, what]) => what === 'stats' && t <= Math.max(since, steps[0]![0])).at(-1)![2] as {
          processes: number[];
          prefetch_count: number;
        };
        return [{ worker: 'capr@vm', value: { pool: { processes: stats.processes }, prefetch_count: stats.prefetch_count } }];
      };
    }

    it('pool_grow: reads the pool size first, then polls stats until the processes appear (captured timeline)', async () => {
      const clock = new ManualClock();
      const transport = new RecordingTransport(replayGrow(clock));
      const client = new ControlClient(transport, {
        timeoutMs: 1000,
        confirmIntervalMs: 500,
        clock,
        sleep: async (ms) => clock.advance(ms),
      });
      const started = clock.nowMs();
      const result = await client.run('pool_grow', { n: 2 }, { workers: ['capr@vm'] }, { confirm: true });
      expect(result.results).toEqual([
        {
          worker: 'capr@vm',
          status: 'ok',
          message: 'pool will grow',
          reply: { ok: 'pool will grow' },
          confirmed: true,
          confirmation: 'observed 4 pool processes (was 2)',
        },
      ]);
      expect(transport.methods()[0]).toBe('stats');
      expect(transport.methods()[1]).toBe('pool_grow');
      expect(transport.sent.slice(2).every((s) => s.request.method === 'stats' && s.request.destination?.[0] === 'capr@vm')).toBe(true);
      // The new processes showed up 4.3 s after the command, on the pool's maintenance tick.
      expect(clock.nowMs() - started).toBeGreaterThan(4000);
      expect(clock.nowMs() - started).toBeLessThanOrEqual(8000);
    });

    it('pool_grow: confirmed false when the processes do not appear within the bound', async () => {
      const clock = new ManualClock();
      const transport = new RecordingTransport(replayGrow(clock));
      const client = new ControlClient(transport, {
        timeoutMs: 1000,
        confirmTimeoutMs: 3000,
        confirmIntervalMs: 500,
        clock,
        sleep: async (ms) => clock.advance(ms),
      });
      const result = await client.run('pool_grow', { n: 2 }, { workers: ['capr@vm'] }, { confirm: true });
      expect(result.results[0]).toMatchObject({
        status: 'ok',
        confirmed: false,
        confirmation: 'expected 4 pool processes (was 2): not within 3000 ms',
      });
      expect(result.outcome).toBe('ok');
    });

    it('add_consumer and cancel_consumer: polls active_queues (captured replies)', async () => {
      const prefork = readFixture<{ configs: Record<string, Record<string, { reply: Array<Record<string, unknown>> }>> }>(
        'celery-5.2.6/control_replies_by_pool.json',
      ).configs['prefork_redis_db0 (-E -c 2)']!;
      const queuesBefore = prefork.active_queues!.reply[0]!['capr@vm'];
      const queuesAfterAdd = prefork.active_queues_after_add!.reply[0]!['capr@vm'];
      let probes = 0;
      const { client } = setup((request) => {
        if (request.method === 'add_consumer') return [{ worker: 'capr@vm', value: { ok: 'add consumer extra_q' } }];
        if (request.method === 'cancel_consumer') return [{ worker: 'capr@vm', value: { ok: 'no longer consuming from extra_q' } }];
        // The queue is declared after the reply (call_soon): the first probe does not see it yet.
        probes += 1;
        return [{ worker: 'capr@vm', value: probes === 1 ? queuesBefore : queuesAfterAdd }];
      });
      const added = await client.run(
        'add_consumer',
        { queue: 'extra_q', exchange: 'extra_x', routing_key: 'extra_rk' },
        { workers: ['capr@vm'] },
        { confirm: true },
      );
      expect(added.results[0]).toMatchObject({ status: 'ok', confirmed: true, confirmation: 'observed queue extra_q in active_queues' });
      expect(probes).toBe(2);
      const cancelled = await client.run('cancel_consumer', { queue: 'extra_q' }, { workers: ['capr@vm'] }, { confirm: true });
      expect(cancelled.results[0]).toMatchObject({
        status: 'ok',
        confirmed: false,
        confirmation: expect.stringContaining('expected queue extra_q gone from active_queues') as string,
      });
    });

    it('rate_limit: polls registered for the new limit (captured reply)', async () => {
      const registered = (
        JSON.parse(
          readFixture<{ calls: Record<string, { replies: Array<{ body_raw: string }> }> }>('celery-5.2.6/amqp_pidbox.json').calls
            .registered!.replies[0]!.body_raw,
        ) as Record<string, unknown>
      )['cap1@vm'];
      const { client, transport } = setup(
        workersAnswering({ 'cap1@vm': { rate_limit: { ok: 'new rate limit set successfully' }, registered } }),
      );
      const result = await client.run(
        'rate_limit',
        { task_name: 'tasks.add', rate_limit: '10/m' },
        { workers: ['cap1@vm'] },
        { confirm: true },
      );
      expect(result.results[0]).toMatchObject({ confirmed: true, confirmation: 'observed tasks.add [rate_limit=10/m] in registered' });
      expect(transport.sent[1]!.request).toEqual({
        method: 'registered',
        arguments: { taskinfoitems: ['rate_limit'] },
        destination: ['cap1@vm'],
      });
      const other = await client.run(
        'rate_limit',
        { task_name: 'tasks.fail', rate_limit: '10/m' },
        { workers: ['cap1@vm'] },
        { confirm: true },
      );
      expect(other.results[0]).toMatchObject({ confirmed: false });
    });

    it('time_limit: reads soft and hard from registered as Python prints them', async () => {
      const { client } = setup(
        workersAnswering({
          [A]: {
            time_limit: { ok: 'time limits set successfully' },
            registered: ['tasks.add', 'tasks.sleep [soft_time_limit=1.5 time_limit=3]'],
          },
        }),
      );
      const result = await client.run('time_limit', { task_name: 'tasks.sleep', soft: 1.5, hard: 3 }, { workers: [A] }, { confirm: true });
      expect(result.results[0]).toMatchObject({ confirmed: true });
      const removed = await client.run(
        'time_limit',
        { task_name: 'tasks.add', soft: null, hard: null },
        { workers: [A] },
        { confirm: true },
      );
      expect(removed.results[0]).toMatchObject({ confirmed: true, confirmation: 'observed no time limits on tasks.add in registered' });
    });

    it('no confirmation for workers that refused, did not answer, or commands with nothing to observe', async () => {
      const { client, transport } = setup(
        workersAnswering({
          [A]: {
            pool_grow: { error: 'pool_grow is not supported with autoscale. Adjust autoscale range instead.' },
            stats: { pool: { processes: [1] } },
          },
          [B]: { pool_restart: { ok: 'reload started' } },
        }),
      );
      const grow = await client.run('pool_grow', { n: 1 }, { workers: [A, C] }, { confirm: true });
      expect(grow.results.map((r) => [r.worker, r.status, r.confirmed])).toEqual([
        [A, 'error', null],
        [C, 'no_reply', null],
      ]);
      expect(transport.methods()).toEqual(['stats', 'pool_grow']);
      const restart = await client.run('pool_restart', {}, { workers: [B] }, { confirm: true });
      expect(restart.results[0]).toMatchObject({ status: 'ok', confirmed: null });
      const plain = await client.run('pool_restart', {}, { workers: [B] });
      expect(plain.results[0]).not.toHaveProperty('confirmed');
    });

    it('shutdown: confirmed once the worker stops answering ping', async () => {
      let pings = 0;
      const { client } = setup((request) => (request.method === 'ping' && ++pings < 3 ? [{ worker: A, value: { ok: 'pong' } }] : []));
      const result = await client.run('shutdown', {}, { workers: [A] }, { confirm: true });
      expect(result.results).toEqual([{ worker: A, status: 'sent', confirmed: true, confirmation: 'observed no answer to ping' }]);
      expect(pings).toBe(3);
    });

    it('a broker lost while confirming ends the polling without throwing: the command was sent', async () => {
      const { client, transport } = setup(
        workersAnswering({ [A]: { autoscale: { ok: 'autoscale now max=4 min=1' }, stats: { autoscaler: { max: 3, min: 1 } } } }),
      );
      const original = transport.broadcast.bind(transport);
      transport.broadcast = async (request, options) => {
        const replies = await original(request, options);
        if (request.method === 'autoscale') transport.connected = false;
        return replies;
      };
      const result = await client.run('autoscale', { max: 4, min: 1 }, { workers: [A] }, { confirm: true });
      expect(result.results[0]).toMatchObject({
        status: 'ok',
        confirmed: false,
        confirmation: expect.stringContaining('probing failed (broker not connected)') as string,
      });
    });
  });
});

describe('pool_shrink is bounded by each worker’s live pool', () => {
  const stats = (processes: number) => ({
    pool: { processes: Array.from({ length: processes }, (_, i) => 100 + i), 'max-concurrency': processes },
  });

  it('cuts n per worker to leave one process, sends each its own n, and says before → after', async () => {
    const { client, transport } = setup(
      workersAnswering({
        [A]: { stats: stats(3), pool_shrink: { ok: 'pool will shrink' } },
        [B]: { stats: stats(8), pool_shrink: { ok: 'pool will shrink' } },
        [C]: { stats: stats(1), pool_shrink: { ok: 'pool will shrink' } },
      }),
    );
    const result = await client.run('pool_shrink', { n: 5 }, { workers: [A, B, C] });
    expect(transport.sent.map((s) => [s.request.method, s.request.arguments, s.request.destination])).toEqual([
      ['stats', {}, [A, B, C]],
      ['pool_shrink', { n: 2 }, [A]],
      ['pool_shrink', { n: 5 }, [B]],
    ]);
    expect(result.results.map((r) => [r.worker, r.status, r.kind, r.before, r.after])).toEqual([
      [A, 'ok', undefined, 3, 1],
      [B, 'ok', undefined, 8, 3],
      [C, 'error', 'pool_floor', 1, 1],
    ]);
    expect(result.outcome).toBe('partial');
    expect(result.keepProcesses).toBe(1);
  });

  it('empties a pool only when keepProcesses: 0 is asked for explicitly', async () => {
    const { client, transport } = setup(workersAnswering({ [A]: { stats: stats(3), pool_shrink: { ok: 'pool will shrink' } } }));
    const result = await client.run('pool_shrink', { n: 50 }, { workers: [A] }, { keepProcesses: 0 });
    expect(transport.sent[1]!.request.arguments).toEqual({ n: 3 });
    expect(result.results[0]).toMatchObject({ status: 'ok', before: 3, after: 0 });
    await expect(client.run('pool_shrink', { n: 1 }, { workers: [A] }, { keepProcesses: -1 })).rejects.toThrow(
      'keep_processes: must be an integer from 0 to 1000',
    );
  });

  it('sends nothing to a named worker that does not answer stats: its live size is unknown', async () => {
    const { client, transport } = setup(workersAnswering({ [A]: { stats: stats(3), pool_shrink: { ok: 'pool will shrink' } } }));
    const result = await client.run('pool_shrink', { n: 1 }, { workers: [A, B] });
    expect(transport.sent.map((s) => [s.request.method, s.request.destination])).toEqual([
      ['stats', [A, B]],
      ['pool_shrink', [A]],
    ]);
    expect(result.results[1]).toMatchObject({ worker: B, status: 'no_reply' });
    expect(result.results[1]!.message).toContain('nothing was sent');
  });

  it('a pattern becomes the names of the workers that answered stats', async () => {
    const { client, transport } = setup(
      workersAnswering({
        [A]: { stats: stats(2), pool_shrink: { ok: 'pool will shrink' } },
        [B]: { stats: stats(2), pool_shrink: { ok: 'pool will shrink' } },
      }),
    );
    const result = await client.run('pool_shrink', { n: 1 }, { pattern: '*@host' });
    expect(transport.sent[0]!.request).toMatchObject({ method: 'stats', destination: null, pattern: '*@host' });
    expect(transport.sent[1]!.request).toMatchObject({ method: 'pool_shrink', destination: [A, B] });
    expect(result.results.map((r) => r.worker)).toEqual([A, B]);
  });

  it('an error reply after a shrink keeps `before` and claims no `after`; answeredCommand marks it for re-inspection', async () => {
    const { client } = setup(
      workersAnswering({ [A]: { stats: stats(2), pool_shrink: { error: 'ValueError("Can\'t shrink pool. All processes busy!")' } } }),
    );
    const result = await client.run('pool_shrink', { n: 1 }, { workers: [A] });
    expect(result.results[0]).toMatchObject({ status: 'error', kind: 'pool_busy', before: 2 });
    expect(result.results[0]!.after).toBeUndefined();
    expect(answeredCommand(result.results[0]!)).toBe(true);
    expect(answeredCommand({ worker: A, status: 'no_reply' })).toBe(false);
  });
});
