import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { ControlClient, type ControlOutcome, type ControlResult, type WorkerResult } from '../../src/control/client.js';
import { silentLogger } from '../../src/log.js';
import { createTransport } from '../../src/transport/index.js';
import {
  BrokerUnavailableError,
  type BroadcastOptions,
  type BrokerTransport,
  type ControlReply,
  type ControlRequest,
  type EventSink,
  type QueueDepth,
  type TransportObserver,
} from '../../src/transport/transport.js';
import { inspectActiveQueues, inspectStats, sendTasks } from './celery/client.js';
import { startWorker, type CeleryWorker } from './celery/worker.js';
import { waitFor } from './exporter.js';
import { isolatedBroker, type BrokerUnderTest } from './exporter-scenarios.js';
import { TcpProxy } from './tcp-proxy.js';

const ignoreEvents: EventSink = { onEvents: () => undefined, onDrop: () => undefined, onSubscribed: () => undefined };
const ignoreConnection: TransportObserver = { connected: () => undefined, disconnected: () => undefined, reconnecting: () => undefined };

/** The real transport, counting what is published: proves "sent once, never retried". */
class CountingTransport implements BrokerTransport {
  readonly published: ControlRequest[] = [];

  constructor(readonly inner: BrokerTransport) {}

  get kind(): 'amqp' | 'redis' {
    return this.inner.kind;
  }
  start(sink: EventSink): void {
    this.inner.start(sink);
  }
  isConnected(): boolean {
    return this.inner.isConnected();
  }
  broadcast(request: ControlRequest, options: BroadcastOptions): Promise<ControlReply[]> {
    const replies = this.inner.broadcast(request, options);
    // Counted only once the transport took it (it rejects before publishing while disconnected).
    if (this.inner.isConnected()) this.published.push(request);
    return replies;
  }
  queueDepths(queues: readonly string[], timeoutMs: number): Promise<QueueDepth[]> {
    return this.inner.queueDepths(queues, timeoutMs);
  }
  purgeQueue(queue: string, timeoutMs: number): Promise<number> {
    return this.inner.purgeQueue(queue, timeoutMs);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** A production transport from the same flags the service takes, fast reconnects for the fault test. */
function transportFor(argv: string[]): BrokerTransport {
  const { config } = loadConfig({
    argv: [...argv, '--reconnect-initial-delay-seconds', '0.1', '--reconnect-max-delay-seconds', '0.5'],
    env: {},
  });
  return createTransport(config!, ignoreConnection, silentLogger());
}

/** The broker flags with the URL pointed at a proxy on `port` instead of the broker itself. */
function viaPort(argv: string[], brokerPort: number, port: number): string[] {
  return argv.map((arg) => arg.replace(`127.0.0.1:${brokerPort}/`, `127.0.0.1:${port}/`));
}

const only = (result: ControlResult, worker: string): WorkerResult => {
  const found = result.results.find((r) => r.worker === worker);
  if (!found) throw new Error(`no result for ${worker} in ${JSON.stringify(result.results)}`);
  return found;
};

/**
 * Remote control proven on one broker against real Celery 5.2.6 workers: every command's effect
 * is observed on the worker (its log, Celery's own inspect client, or tasks it runs), plus the
 * failure paths (unknown and dying workers, a broker that is down, unsupported pools).
 */
export function describeControlOnRealWorkers(kind: 'amqp' | 'redis'): void {
  const brokerPort = kind === 'amqp' ? 5672 : 6379;

  describe(`remote control on ${kind} with real Celery workers`, () => {
    const id = randomBytes(3).toString('hex');
    const node = (role: string) => `ctl${id}-${role}@cap`;
    const queue = (role: string) => `ctl-${role}`;
    let broker: BrokerUnderTest;
    let transport: CountingTransport;
    let client: ControlClient;
    const observed: Array<[string, ControlOutcome]> = [];
    const workers: CeleryWorker[] = [];
    /** prefork -c 2; grows, shrinks, runs the tasks. */
    let main: CeleryWorker;
    /** prefork --autoscale=3,1 with worker_pool_restarts. */
    let auto: CeleryWorker;
    let solo: CeleryWorker;
    let threads: CeleryWorker;
    /** prefork -c 3, idle: shrunk by far more than it has. */
    let three: CeleryWorker;
    const closing: Array<() => Promise<void>> = [];

    const start = async (role: string, options: Partial<Parameters<typeof startWorker>[0]>) => {
      const worker = await startWorker({
        brokerUrl: broker.celery.brokerUrl,
        transportOptions: broker.celery.transportOptions,
        nodename: node(role),
        queues: [queue(role)],
        ...options,
      });
      workers.push(worker);
      return worker;
    };
    const logTail = (worker: CeleryWorker) => `\n${worker.nodename} log tail:\n${worker.logs().slice(-3000)}`;
    const activeIds = async (worker: CeleryWorker): Promise<string[]> => {
      const reply = only(await client.run('active', {}, { workers: [worker.nodename] }), worker.nodename).reply;
      return Array.isArray(reply) ? reply.map((r) => String((r as { id?: unknown }).id)) : [];
    };

    beforeAll(async () => {
      broker = await isolatedBroker(kind, 'control');
      const inner = transportFor(broker.exporterArgs);
      transport = new CountingTransport(inner);
      closing.push(() => transport.close());
      transport.start(ignoreEvents);
      // New prefork processes appear on the pool's 5 s maintenance tick; the bound leaves room for
      // a loaded machine beyond the 8 s default.
      client = new ControlClient(transport, { timeoutMs: 1500, confirmTimeoutMs: 12_000 }, (command, outcome) =>
        observed.push([command, outcome]),
      );
      [main, auto, solo, threads, three] = await Promise.all([
        start('main', { concurrency: 2 }),
        start('auto', { autoscale: [3, 1], poolRestarts: true }),
        start('solo', { pool: 'solo' }),
        start('thr', { pool: 'threads', concurrency: 2 }),
        start('three', { concurrency: 3 }),
      ]);
      await waitFor('control transport connected', () => (transport.isConnected() ? true : undefined), 20_000, 50);
    });

    afterAll(async () => {
      await Promise.allSettled(workers.map((w) => w.stop()));
      await Promise.allSettled(closing.map((close) => close()));
      await broker?.cleanup();
    });

    it('pool_grow adds a prefork process and pool_shrink removes it, both confirmed via stats', async () => {
      const grown = await client.run('pool_grow', { n: 1 }, { workers: [main.nodename] }, { confirm: true });
      expect(grown.results, logTail(main)).toEqual([
        {
          worker: main.nodename,
          status: 'ok',
          reply: { ok: 'pool will grow' },
          message: 'pool will grow',
          confirmed: true,
          confirmation: 'observed 3 pool processes (was 2)',
        },
      ]);
      // Celery's own inspect client sees the same.
      expect((await inspectStats(broker.celery, [main.nodename]))[main.nodename]!.pool.processes).toHaveLength(3);

      const shrunk = await client.run('pool_shrink', { n: 1 }, { workers: [main.nodename] }, { confirm: true });
      expect(shrunk.results[0], logTail(main)).toMatchObject({
        status: 'ok',
        confirmed: true,
        confirmation: 'observed 2 pool processes (was 3)',
      });
      expect((await inspectStats(broker.celery, [main.nodename]))[main.nodename]!.pool.processes).toHaveLength(2);
      expect(observed).toContainEqual(['pool_grow', 'ok']);
    });

    it('pool_shrink by 50 of an idle 3-process worker leaves it 1 process and says 3 → 1; at 1 nothing more is sent', async () => {
      // billiard would remove all three and then answer "All processes busy!".
      const mark = transport.published.length;
      const shrunk = await client.run('pool_shrink', { n: 50 }, { workers: [three.nodename] }, { confirm: true });
      expect(shrunk.results, logTail(three)).toEqual([
        {
          worker: three.nodename,
          status: 'ok',
          reply: { ok: 'pool will shrink' },
          message: 'pool will shrink',
          before: 3,
          after: 1,
          confirmed: true,
          confirmation: 'observed 1 pool processes (was 3)',
        },
      ]);
      // On the wire: stats for the live count, the shrink cut to 2, then only the confirmation's stats.
      const wire = transport.published.slice(mark).map((r) => [r.method, r.arguments, r.destination]);
      expect(wire.slice(0, 2)).toEqual([
        ['stats', {}, [three.nodename]],
        ['pool_shrink', { n: 2 }, [three.nodename]],
      ]);
      expect(wire.slice(2).every(([method]) => method === 'stats')).toBe(true);
      expect((await inspectStats(broker.celery, [three.nodename]))[three.nodename]!.pool.processes).toHaveLength(1);

      const again = await client.run('pool_shrink', { n: 50 }, { workers: [three.nodename] });
      expect(again.results).toEqual([
        {
          worker: three.nodename,
          status: 'error',
          kind: 'pool_floor',
          message: 'the pool has 1 process and a shrink leaves at least 1; nothing was sent',
          before: 1,
          after: 1,
        },
      ]);
      expect(transport.published.at(-1)!.method).toBe('stats');

      // Only an explicit keepProcesses: 0 empties a pool; then it grows back for the tests after.
      const emptied = await client.run('pool_shrink', { n: 50 }, { workers: [three.nodename] }, { confirm: true, keepProcesses: 0 });
      expect(emptied.results[0], logTail(three)).toMatchObject({ status: 'ok', before: 1, after: 0, confirmed: true });
      const regrown = await client.run('pool_grow', { n: 1 }, { workers: [three.nodename] }, { confirm: true });
      expect(regrown.results[0]).toMatchObject({ status: 'ok', confirmed: true });
    });

    it('solo and threads pools cannot grow: unsupported_pool; an autoscaling worker: autoscale_enabled', async () => {
      const result = await client.run('pool_grow', { n: 1 }, { workers: [solo.nodename, threads.nodename, auto.nodename] });
      expect(result.results.map((r) => [r.worker, r.status, r.kind])).toEqual([
        [solo.nodename, 'error', 'unsupported_pool'],
        [threads.nodename, 'error', 'unsupported_pool'],
        [auto.nodename, 'error', 'autoscale_enabled'],
      ]);
      expect(result.outcome).toBe('error');
      const shrink = await client.run('pool_shrink', { n: 1 }, { workers: [threads.nodename] });
      expect(shrink.results[0]).toMatchObject({ status: 'error', kind: 'unsupported_pool' });
    });

    it('autoscale changes stats.autoscaler on an --autoscale worker, and is refused by one without', async () => {
      const result = await client.run('autoscale', { max: 4, min: 2 }, { workers: [auto.nodename, main.nodename] }, { confirm: true });
      expect(only(result, auto.nodename)).toMatchObject({ status: 'ok', message: 'autoscale now max=4 min=2', confirmed: true });
      expect(only(result, main.nodename)).toMatchObject({ status: 'error', kind: 'autoscale_disabled', confirmed: null });
      const stats = (await inspectStats(broker.celery, [auto.nodename]))[auto.nodename]!;
      expect(stats.autoscaler).toMatchObject({ max: 4, min: 2 });
    });

    it('pool_restart replies ok with worker_pool_restarts and pool_restarts_disabled without', async () => {
      const result = await client.run('pool_restart', {}, { workers: [auto.nodename, main.nodename] });
      expect(only(result, auto.nodename)).toMatchObject({ status: 'ok', message: 'reload started' });
      expect(only(result, main.nodename)).toMatchObject({ status: 'error', kind: 'pool_restarts_disabled' });
    });

    it('add_consumer makes the worker consume a new queue and run its tasks; cancel_consumer stops it', async () => {
      const extra = `ctl-extra-${id}`;
      const added = await client.run('add_consumer', { queue: extra }, { workers: [main.nodename] }, { confirm: true });
      expect(added.results[0], logTail(main)).toMatchObject({ status: 'ok', message: `add consumer ${extra}`, confirmed: true });
      const queues = (await inspectActiveQueues(broker.celery, [main.nodename]))[main.nodename]!.map((q) => q.name);
      expect(queues.sort()).toEqual([queue('main'), extra].sort());

      const [taskId] = await sendTasks(broker.celery, [{ name: 'tasks.add', args: [2, 3], queue: extra }]);
      await main.waitForLog(`Task tasks.add[${taskId}] succeeded`, 20_000);

      const cancelled = await client.run('cancel_consumer', { queue: extra }, { workers: [main.nodename] }, { confirm: true });
      expect(cancelled.results[0]).toMatchObject({ status: 'ok', message: `no longer consuming from ${extra}`, confirmed: true });
      expect((await inspectActiveQueues(broker.celery, [main.nodename]))[main.nodename]!.map((q) => q.name)).toEqual([queue('main')]);
    });

    it('rate_limit shows in registered, is removed again, and an unknown task is reported as such', async () => {
      const set = await client.run(
        'rate_limit',
        { task_name: 'tasks.add', rate_limit: '10/m' },
        { workers: [main.nodename] },
        { confirm: true },
      );
      expect(set.results[0]).toMatchObject({ status: 'ok', message: 'new rate limit set successfully', confirmed: true });
      const registered = only(await client.run('registered', {}, { workers: [main.nodename] }), main.nodename).reply as string[];
      expect(registered).toContain('tasks.add [rate_limit=10/m]');

      const removed = await client.run(
        'rate_limit',
        { task_name: 'tasks.add', rate_limit: '' },
        { workers: [main.nodename] },
        { confirm: true },
      );
      expect(removed.results[0]).toMatchObject({ status: 'ok', message: 'rate limit disabled successfully', confirmed: true });

      const unknown = await client.run('rate_limit', { task_name: 'tasks.nope', rate_limit: '1/s' }, { workers: [main.nodename] });
      expect(unknown.results[0]).toMatchObject({ status: 'error', kind: 'unknown_task' });
    });

    it('revoke with terminate stops a running task', async () => {
      const taskId = randomUUID();
      await sendTasks(broker.celery, [{ name: 'tasks.sleep', args: [60], queue: queue('main'), taskId }]);
      await waitFor(
        'the long task to run',
        async () => ((await activeIds(main)).includes(taskId) ? true : undefined),
        20_000,
        200,
        () => logTail(main),
      );

      const result = await client.run(
        'revoke',
        { task_id: taskId, terminate: true, signal: 'SIGTERM' },
        { workers: [main.nodename] },
        { confirm: true },
      );
      expect(result.role).toBe('admin');
      expect(result.results[0]).toMatchObject({ status: 'ok', message: `terminate: ${taskId}`, confirmed: true });
      await waitFor(
        'the task to stop',
        async () => (!(await activeIds(main)).includes(taskId) ? true : undefined),
        20_000,
        200,
        () => logTail(main),
      );
      expect(main.logs()).not.toContain(`Task tasks.sleep[${taskId}] succeeded`);
    });

    it('time_limit kills a long task once the worker rebuilt its task strategies (pool_restart); before that it is not enforced', async () => {
      const set = await client.run(
        'time_limit',
        { task_name: 'tasks.sleep', soft: 1, hard: 2 },
        { workers: [main.nodename, auto.nodename] },
        { confirm: true },
      );
      for (const r of set.results)
        expect(r, r.worker).toMatchObject({ status: 'ok', message: 'time limits set successfully', confirmed: true });
      // Celery 5.2.6 reads a task's time limits when it builds the task strategy, not per task:
      // the new limits apply after pool_restart (worker_pool_restarts) rebuilds the strategies.
      const restart = await client.run('pool_restart', {}, { workers: [auto.nodename] });
      expect(restart.results[0]).toMatchObject({ status: 'ok', message: 'reload started' });

      const [limited, unlimited] = [randomUUID(), randomUUID()];
      await sendTasks(broker.celery, [
        { name: 'tasks.sleep', args: [30], queue: queue('auto'), taskId: limited },
        { name: 'tasks.sleep', args: [2.5], queue: queue('main'), taskId: unlimited },
      ]);
      await auto.waitForLog(new RegExp(`Soft time limit \\([\\d.]+s\\) exceeded for tasks\\.sleep\\[${limited}\\]`), 20_000);
      await auto.waitForLog(new RegExp(`Task tasks\\.sleep\\[${limited}\\] raised unexpected`), 20_000);
      expect(auto.logs()).toContain('billiard.exceptions.SoftTimeLimitExceeded');
      await main.waitForLog(new RegExp(`Task tasks\\.sleep\\[${unlimited}\\] succeeded`), 20_000);
      expect(main.logs()).not.toContain(`exceeded for tasks.sleep[${unlimited}]`);

      const removed = await client.run(
        'time_limit',
        { task_name: 'tasks.sleep', soft: null, hard: null },
        { workers: [main.nodename, auto.nodename] },
        { confirm: true },
      );
      expect(removed.results.map((r) => r.confirmed)).toEqual([true, true]);
    });

    it('a glob pattern reaches only the matching workers', async () => {
      const soloOnly = await client.run('ping', {}, { pattern: `ctl${id}-s*@cap` }, { timeoutMs: 1500 });
      expect(soloOnly.destination).toBeNull();
      expect(soloOnly.results.map((r) => [r.worker, r.status])).toEqual([[solo.nodename, 'ok']]);
      const everyone = await client.run('ping', {}, { pattern: `ctl${id}-*@cap` }, { timeoutMs: 1500 });
      expect(everyone.results.map((r) => r.worker)).toEqual(
        [auto.nodename, main.nodename, solo.nodename, threads.nodename, three.nodename].sort(),
      );
    });

    it('an unknown worker is reported as no_reply beside the ones that answered', async () => {
      const ghost = node('ghost');
      const result = await client.run('ping', {}, { workers: [main.nodename, ghost] }, { timeoutMs: 1000 });
      expect(result.results).toEqual([
        { worker: main.nodename, status: 'ok', reply: { ok: 'pong' }, message: 'pong' },
        { worker: ghost, status: 'no_reply', message: 'no reply within 1000 ms' },
      ]);
      expect(result.outcome).toBe('partial');
      expect(await client.ping([main.nodename, ghost], 1000)).toEqual(
        new Map([
          [main.nodename, true],
          [ghost, false],
        ]),
      );
    });

    it('a worker that dies between the request and its reply is no_reply, and the command is not retried', async () => {
      // Stopped, it cannot read the request; killed, it never will.
      solo.kill('SIGSTOP');
      const before = transport.published.length;
      const pending = client.run('stats', {}, { workers: [solo.nodename] }, { timeoutMs: 2000 });
      await new Promise((r) => setTimeout(r, 300));
      solo.kill('SIGKILL');
      const result = await pending;
      expect(result.results).toEqual([{ worker: solo.nodename, status: 'no_reply', message: 'no reply within 2000 ms' }]);
      expect(result.outcome).toBe('no_reply');
      expect(transport.published.slice(before).map((r) => r.method)).toEqual(['stats']);
      await solo.exited;
    });

    it('shutdown is sent as a cast and the worker exits', async () => {
      const result = await client.run('shutdown', {}, { workers: [threads.nodename] }, { confirm: true });
      expect(result.results).toEqual([
        { worker: threads.nodename, status: 'sent', confirmed: true, confirmation: 'observed no answer to ping' },
      ]);
      const code = await Promise.race([threads.exited, new Promise<'running'>((r) => setTimeout(() => r('running'), 20_000))]);
      expect(code, logTail(threads)).not.toBe('running');
      expect(threads.logs()).toContain('Got shutdown from remote');
      expect(observed).toContainEqual(['shutdown', 'sent']);
    });

    it('while the broker is down a command fails fast with BrokerUnavailableError, and nothing is sent after the outage', async () => {
      const proxy = new TcpProxy('127.0.0.1', brokerPort);
      await proxy.listen();
      closing.push(() => proxy.close());
      const cut = new CountingTransport(transportFor(viaPort(broker.exporterArgs, brokerPort, proxy.port)));
      closing.push(() => cut.close());
      const outcomes: ControlOutcome[] = [];
      const cutClient = new ControlClient(cut, { timeoutMs: 1500 }, (_command, outcome) => outcomes.push(outcome));
      cut.start(ignoreEvents);
      await waitFor('connected through the proxy', () => (cut.isConnected() ? true : undefined), 20_000, 50);
      expect((await cutClient.ping([main.nodename])).get(main.nodename)).toBe(true);

      proxy.pause();
      await waitFor('the transport to see the outage', () => (!cut.isConnected() ? true : undefined), 20_000, 20);
      const sentBefore = cut.published.length;
      await expect(
        cutClient.run('rate_limit', { task_name: 'tasks.noop', rate_limit: '7/m' }, { workers: [main.nodename] }),
      ).rejects.toThrow(BrokerUnavailableError);
      expect(outcomes).toEqual(['broker_unavailable']);
      expect(cut.published.length).toBe(sentBefore);

      proxy.resume();
      await waitFor('reconnected through the proxy', () => (cut.isConnected() ? true : undefined), 20_000, 50);
      // A fresh command goes through; the refused one was never queued and never arrives.
      expect((await cutClient.ping([main.nodename])).get(main.nodename)).toBe(true);
      await new Promise((r) => setTimeout(r, 1000));
      const registered = only(await client.run('registered', {}, { workers: [main.nodename] }), main.nodename).reply as string[];
      expect(registered).toContain('tasks.noop');
      expect(registered.join('\n')).not.toContain('7/m');
    });
  });
}
