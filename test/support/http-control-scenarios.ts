import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { stringify as toYaml } from 'yaml';
import { hashPassword } from '../../src/auth/index.js';
import { celeryInspect, inspectActiveQueues, inspectStats, sendTasks } from './celery/client.js';
import { startWorker, type CeleryWorker, type WorkerOptions } from './celery/worker.js';
import { startExporter, waitFor, type RunningExporter } from './exporter.js';
import { isolatedBroker, type BrokerUnderTest } from './exporter-scenarios.js';
import { describeCommands, startPidboxSpy, type PidboxSpy } from './pidbox-spy.js';
import { metricValue, parseMetrics } from './prom.js';
import { TcpProxy } from './tcp-proxy.js';

type User = 'admin' | 'oper' | 'viewer';

/** What a request carries, the ways Flower's docs and scripts send it. */
interface CallOptions {
  /** Basic auth as a configured user (default `oper`), explicit credentials, or none. */
  as?: User | { username: string; password: string } | null;
  query?: Record<string, string>;
  /** application/x-www-form-urlencoded, as `curl -d n=1` sends it. */
  form?: Record<string, string>;
  json?: unknown;
  /** A raw body with its content type (malformed or oversize input). */
  raw?: { body: string; type: string };
}

interface HttpAnswer {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON of many shapes, checked with toMatchObject
  body: any;
}

/**
 * Redis keeps what the suite left (the idle queue's messages, kombu binding sets) after the run;
 * everything of this suite carries its unique global_keyprefix.
 */
async function deleteRedisKeys(url: string, keyprefix: string): Promise<void> {
  if (!keyprefix.startsWith('http-control-')) return;
  const client = new Redis(url, { maxRetriesPerRequest: 1 });
  client.on('error', () => undefined);
  try {
    const pattern = `${keyprefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
    let cursor = '0';
    for (let round = 0; round < 1000; round++) {
      const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
      if (keys.length > 0) await client.del(...keys);
      cursor = next;
      if (cursor === '0') break;
    }
  } finally {
    client.disconnect();
  }
}

/** One spied command in the shape the assertions compare. */
const sent = (method: string, destination: string[] | null) => ({ method, destination });

/**
 * The HTTP control API proven on one broker, end to end: Flower's paths and parameters with
 * basic auth exactly as Flower scripts send them, our /api/v1, real Celery 5.2.6 workers whose
 * state is read back with Celery's own inspect client, and a pidbox spy on the broker itself that
 * shows what each request really put on the wire (and that refused requests put nothing there).
 */
export function describeHttpControl(kind: 'amqp' | 'redis'): void {
  const brokerPort = kind === 'amqp' ? 5672 : 6379;

  describe(`HTTP control API on ${kind} with real Celery workers`, () => {
    const id = randomBytes(3).toString('hex');
    const node = (role: string) => `hc${id}-${role}@cap`;
    const queue = (role: string) => `hc-${role}`;
    const passwords: Record<User, string> = {
      admin: `admin-${randomUUID()}`,
      oper: `oper-${randomUUID()}`,
      viewer: `viewer-${randomUUID()}`,
    };
    let broker: BrokerUnderTest;
    let configDir: string;
    let configFile: string;
    let service: RunningExporter;
    let spy: PidboxSpy;
    const exporters: RunningExporter[] = [];
    const proxies: TcpProxy[] = [];
    const workers: CeleryWorker[] = [];
    /** prefork -c 2: grows, shrinks, consumes extra queues, runs the long tasks. */
    let main: CeleryWorker;
    /** prefork --autoscale=2,1 with worker_pool_restarts. */
    let auto: CeleryWorker;
    /**
     * prefork -c 1 started after the service, without heartbeats: the service never hears of it
     * through events, so every request naming it depends on the service asking the cluster.
     * Stopped and continued by the no_reply test, shut down last.
     */
    let late: CeleryWorker;

    const start = async (role: string, options: Partial<WorkerOptions> = {}) => {
      const worker = await startWorker({
        brokerUrl: broker.celery.brokerUrl,
        transportOptions: broker.celery.transportOptions,
        nodename: node(role),
        queues: [queue(role), queue('shared')],
        ...options,
      });
      workers.push(worker);
      return worker;
    };
    const logTail = (worker: CeleryWorker) => `\n${worker.nodename} log tail:\n${worker.logs().slice(-3000)}`;

    const basic = (username: string, password: string) => `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
    const call = async (
      target: RunningExporter,
      method: 'GET' | 'POST',
      urlPath: string,
      options: CallOptions = {},
    ): Promise<HttpAnswer> => {
      const headers: Record<string, string> = {};
      const as = options.as === undefined ? 'oper' : options.as;
      if (as !== null) headers.Authorization = typeof as === 'string' ? basic(as, passwords[as]) : basic(as.username, as.password);
      let body: string | URLSearchParams | undefined;
      if (options.form) body = new URLSearchParams(options.form);
      else if (options.json !== undefined) {
        body = JSON.stringify(options.json);
        headers['Content-Type'] = 'application/json';
      } else if (options.raw) {
        body = options.raw.body;
        headers['Content-Type'] = options.raw.type;
      }
      const query = options.query ? `?${new URLSearchParams(options.query).toString()}` : '';
      // Bounded: a request that hangs fails the test instead of the suite's timeout.
      const res = await fetch(`${target.url}${urlPath}${query}`, { method, headers, body, signal: AbortSignal.timeout(30_000) });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        // not JSON: kept as text
      }
      return { status: res.status, body: parsed };
    };
    const get = (urlPath: string, options?: CallOptions) => call(service, 'GET', urlPath, options);
    const post = (urlPath: string, options?: CallOptions) => call(service, 'POST', urlPath, options);
    const action = (json: Record<string, unknown>, as: User = 'oper') => post('/api/v1/actions', { json, as });
    const w = (name: string) => encodeURIComponent(name);

    /** Spied commands a request caused (the service's background inspection left out). */
    const sentDuring = async (run: () => Promise<unknown>) => {
      const mark = spy.mark();
      await run();
      await spy.barrier();
      return spy.since(mark).map((c) => sent(c.method, c.destination ? [...c.destination] : null));
    };
    const poolProcesses = async (worker: CeleryWorker) =>
      (await inspectStats(broker.celery, [worker.nodename]))[worker.nodename]?.pool.processes?.length;
    const waitForProcesses = (worker: CeleryWorker, n: number) =>
      // pool_grow/pool_shrink act on the pool's next maintenance tick (≤ 5 s, docs/wire-protocol.md §B5).
      waitFor(
        `${worker.nodename} to run ${n} pool processes`,
        async () => ((await poolProcesses(worker)) === n ? true : undefined),
        10_000,
        500,
        () => logTail(worker),
      );
    const activeTaskIds = async (worker: CeleryWorker) => {
      const active = (await celeryInspect(broker.celery, 'active', [worker.nodename]))[worker.nodename];
      return Array.isArray(active) ? active.map((t) => String((t as { id?: unknown }).id)) : [];
    };
    const registered = async (worker: CeleryWorker) =>
      (await celeryInspect(broker.celery, 'registered', [worker.nodename]))[worker.nodename] as string[];
    const metrics = async (target: RunningExporter) => parseMetrics(await (await target.get('/metrics')).text());
    const commandsTotal = async (target: RunningExporter, command: string, outcome: string) =>
      metricValue(await metrics(target), 'celery_autopilot_control_commands_total', { command, outcome }) ?? 0;

    /** The service under test, as an operator would run it: YAML config with hashed users. */
    const startService = (brokerArgs: string[], extra: string[] = []) =>
      startExporter([
        ...brokerArgs,
        '--config',
        configFile,
        '--metrics-queues',
        queue('idle'),
        '--metrics-queue-length-cache-seconds',
        '0',
        // Workers are inspected when first heard of and after a command changed them; a long
        // interval keeps the pidbox quiet otherwise.
        '--metrics-inspect-interval-seconds',
        '3600',
        // Likewise the /api/workers snapshot: refreshed when asked, not in the background here.
        '--control-workers-refresh-seconds',
        '3600',
        ...extra,
      ]).then((e) => {
        exporters.push(e);
        return e;
      });

    beforeAll(async () => {
      broker = await isolatedBroker(kind, 'http-control');
      configDir = mkdtempSync(path.join(tmpdir(), 'http-control-'));
      configFile = path.join(configDir, 'autopilot.yaml');
      const users = await Promise.all(
        (['admin', 'oper', 'viewer'] as const).map(async (username) => ({
          username,
          password_hash: await hashPassword(passwords[username]),
          role: username === 'oper' ? 'operator' : username,
        })),
      );
      writeFileSync(configFile, toYaml({ auth: { users, login_rate_limit: { max_failures: 1000 } }, audit: { file: '' } }));
      spy = await startPidboxSpy(
        kind === 'amqp'
          ? { kind, url: broker.celery.brokerUrl }
          : { kind, url: broker.celery.brokerUrl, keyprefix: String(broker.celery.transportOptions?.global_keyprefix) },
      );
      service = await startService(broker.exporterArgs);
      await waitFor('service ready', async () => ((await service.get('/-/ready')).status === 200 ? true : undefined), 20_000, 100);
      [main, auto] = await Promise.all([start('main', { concurrency: 2 }), start('auto', { autoscale: [2, 1], poolRestarts: true })]);
      // Queue targeting and /api/workers use what the service learnt from heartbeats and inspection.
      await waitFor(
        'both workers alive and inspected by the service',
        () =>
          [main, auto].every((x) =>
            service.service.workers.alive().some((r) => r.hostname === x.nodename && r.queues?.includes(queue('shared'))),
          )
            ? true
            : undefined,
        20_000,
        100,
      );
    });

    afterAll(async () => {
      await Promise.allSettled(workers.map((x) => x.stop()));
      await Promise.allSettled(exporters.map((e) => e.stop()));
      await Promise.allSettled(proxies.map((p) => p.close()));
      await spy?.close();
      await broker?.cleanup();
      if (kind === 'redis' && broker)
        await deleteRedisKeys(broker.celery.brokerUrl, String(broker.celery.transportOptions?.global_keyprefix));
      if (configDir) rmSync(configDir, { recursive: true, force: true });
    });

    describe("Flower's paths", () => {
      it('GET /api/workers lists live workers with their inspect replies; ?status=true pings them', async () => {
        const listed = await get('/api/workers', { as: 'viewer' });
        expect(listed.status).toBe(200);
        expect(Object.keys(listed.body).sort()).toEqual([auto.nodename, main.nodename]);
        expect(listed.body[main.nodename]).toMatchObject({
          stats: { pool: { 'max-concurrency': 2 } },
          registered: expect.arrayContaining(['tasks.add', 'tasks.sleep']),
          timestamp: expect.any(Number),
        });
        expect(listed.body[main.nodename].active_queues.map((q: { name: string }) => q.name).sort()).toEqual([
          queue('main'),
          queue('shared'),
        ]);
        expect(listed.body[auto.nodename].stats.autoscaler).toMatchObject({ max: 2, min: 1 });

        const status = await get('/api/workers', { as: 'viewer', query: { status: 'true' } });
        expect(status).toEqual({ status: 200, body: { [auto.nodename]: true, [main.nodename]: true } });
        const one = await get('/api/workers', { as: 'viewer', query: { workername: main.nodename, status: 'true' } });
        expect(one.body).toEqual({ [main.nodename]: true });

        const v1 = await get('/api/v1/workers', { as: 'viewer' });
        expect(v1.status).toBe(200);
        expect(v1.body.find((x: { name: string }) => x.name === main.nodename)).toMatchObject({
          up: true,
          pool_processes: 2,
          queues: [queue('main'), queue('shared')],
          software: '5.2.6',
        });
      });

      it("pool/grow?n=1 adds a process (seen by Celery's inspect), pool/shrink with form n=1 removes it", async () => {
        expect(await poolProcesses(main)).toBe(2);
        const grown = await post(`/api/worker/pool/grow/${w(main.nodename)}`, { query: { n: '1' } });
        expect(grown).toMatchObject({
          status: 200,
          body: {
            message: `Growing '${main.nodename}' worker's pool by 1`,
            result: { worker: main.nodename, status: 'ok', message: 'pool will grow' },
          },
        });
        await waitForProcesses(main, 3);

        // The answer says what happens to the pool, after Flower's words.
        const shrunk = await post(`/api/worker/pool/shrink/${w(main.nodename)}`, { form: { n: '1' } });
        expect(shrunk).toMatchObject({
          status: 200,
          body: { message: `Shrinking '${main.nodename}' worker's pool by 1: pool 3 → 2 processes`, result: { before: 3, after: 2 } },
        });
        await waitForProcesses(main, 2);

        // n=50 (the most the API takes) leaves one process, and says so.
        const bounded = await post(`/api/worker/pool/shrink/${w(main.nodename)}`, { query: { n: '50' } });
        expect(bounded).toMatchObject({
          status: 200,
          body: {
            message: `Shrinking '${main.nodename}' worker's pool by 1: pool 2 → 1 process; asked 50, bounded to leave at least 1`,
            result: { status: 'ok', before: 2, after: 1 },
          },
        });
        await waitForProcesses(main, 1);
        const refused = await post(`/api/worker/pool/shrink/${w(main.nodename)}`, { query: { n: '1' } });
        expect(refused).toMatchObject({ status: 403, body: { kind: 'pool_floor', result: { before: 1, after: 1 } } });
        expect((await post(`/api/worker/pool/grow/${w(main.nodename)}`, { query: { n: '1' } })).status).toBe(200);
        await waitForProcesses(main, 2);
      });

      it('pool/autoscale changes stats.autoscaler on an --autoscale worker; a plain worker answers 403 autoscale_disabled', async () => {
        const ok = await post(`/api/worker/pool/autoscale/${w(auto.nodename)}`, { query: { min: '1', max: '3' } });
        expect(ok).toMatchObject({
          status: 200,
          body: {
            message: `Autoscaling '${auto.nodename}' worker (min=1, max=3)`,
            result: { status: 'ok', message: 'autoscale now max=3 min=1' },
          },
        });
        const stats = (await inspectStats(broker.celery, [auto.nodename]))[auto.nodename]!;
        expect(stats.autoscaler).toMatchObject({ max: 3, min: 1 });

        const refused = await post(`/api/worker/pool/autoscale/${w(main.nodename)}`, { query: { min: '1', max: '3' } });
        expect(refused).toMatchObject({
          status: 403,
          body: { message: `Failed to autoscale '${main.nodename}' worker`, kind: 'autoscale_disabled' },
        });
      });

      it('queue/add-consumer (form queue=extra) makes the worker consume and run tasks from it; cancel-consumer stops that', async () => {
        const added = await post(`/api/worker/queue/add-consumer/${w(main.nodename)}`, { form: { queue: 'extra' } });
        expect(added).toMatchObject({ status: 200, body: { message: 'add consumer extra' } });
        await waitFor(
          'extra in active_queues',
          async () =>
            (await inspectActiveQueues(broker.celery, [main.nodename]))[main.nodename]?.some((q) => q.name === 'extra') ? true : undefined,
          10_000,
          300,
          () => logTail(main),
        );
        const [taskId] = await sendTasks(broker.celery, [{ name: 'tasks.add', args: [20, 22], queue: 'extra' }]);
        await main.waitForLog(`Task tasks.add[${taskId}] succeeded`, 20_000);

        const cancelled = await post(`/api/worker/queue/cancel-consumer/${w(main.nodename)}`, { form: { queue: 'extra' } });
        expect(cancelled).toMatchObject({ status: 200, body: { message: 'no longer consuming from extra' } });
        const queues = (await inspectActiveQueues(broker.celery, [main.nodename]))[main.nodename]!.map((q) => q.name);
        expect(queues.sort()).toEqual([queue('main'), queue('shared')]);
      });

      it('task/rate-limit (form workername, ratelimit=10/m) shows in registered; an empty ratelimit removes it', async () => {
        const set = await post('/api/task/rate-limit/tasks.add', { form: { workername: main.nodename, ratelimit: '10/m' } });
        expect(set).toMatchObject({ status: 200, body: { message: 'new rate limit set successfully' } });
        expect(await registered(main)).toContain('tasks.add [rate_limit=10/m]');
        expect(await registered(auto)).toContain('tasks.add');

        const removed = await post('/api/task/rate-limit/tasks.add', { form: { workername: main.nodename, ratelimit: '' } });
        expect(removed).toMatchObject({ status: 200, body: { message: 'rate limit disabled successfully' } });
        expect(await registered(main)).toContain('tasks.add');
      });

      it('task/revoke: without terminate it flags the id; with terminate=true (admin) it stops a running task', async () => {
        const flagged = randomUUID();
        const plain = await post(`/api/task/revoke/${flagged}`);
        expect(plain.status, JSON.stringify(plain.body)).toBe(200);
        expect(plain.body.results).toContainEqual(
          expect.objectContaining({ worker: main.nodename, status: 'ok', message: `tasks ${flagged} flagged as revoked` }),
        );

        const taskId = randomUUID();
        await sendTasks(broker.celery, [{ name: 'tasks.sleep', args: [60], queue: queue('main'), taskId }]);
        await waitFor(
          'the long task to run',
          async () => ((await activeTaskIds(main)).includes(taskId) ? true : undefined),
          20_000,
          300,
          () => logTail(main),
        );
        const revoked = await post(`/api/task/revoke/${taskId}`, { as: 'admin', query: { terminate: 'true' } });
        expect(revoked).toMatchObject({ status: 200, body: { message: `Revoked '${taskId}'` } });
        expect(revoked.body.results).toContainEqual(
          expect.objectContaining({ worker: main.nodename, status: 'ok', message: `terminate: ${taskId}` }),
        );
        await waitFor(
          'the task to stop',
          async () => (!(await activeTaskIds(main)).includes(taskId) ? true : undefined),
          20_000,
          300,
          () => logTail(main),
        );
        expect(main.logs()).not.toContain(`Task tasks.sleep[${taskId}] succeeded`);
      });

      it('task/timeout sets soft/hard limits; after pool/restart (worker_pool_restarts) a long task is killed; without it pool/restart is 403', async () => {
        const set = await post('/api/task/timeout/tasks.sleep', { form: { workername: auto.nodename, soft: '1', hard: '2' } });
        expect(set).toMatchObject({ status: 200, body: { message: 'time limits set successfully' } });
        // Celery 5.2.6 applies new limits once the task strategies are rebuilt, i.e. after pool_restart.
        const restarted = await post(`/api/worker/pool/restart/${w(auto.nodename)}`, { as: 'admin' });
        expect(restarted).toMatchObject({
          status: 200,
          body: { message: `Restarting '${auto.nodename}' worker's pool`, result: { message: 'reload started' } },
        });

        const [taskId] = await sendTasks(broker.celery, [{ name: 'tasks.sleep', args: [30], queue: queue('auto') }]);
        await auto.waitForLog(new RegExp(`Soft time limit \\([\\d.]+s\\) exceeded for tasks\\.sleep\\[${taskId}\\]`), 20_000);
        await auto.waitForLog(new RegExp(`Task tasks\\.sleep\\[${taskId}\\] raised unexpected`), 20_000);

        const refused = await post(`/api/worker/pool/restart/${w(main.nodename)}`, { as: 'admin' });
        expect(refused).toMatchObject({
          status: 403,
          body: { message: `Failed to restart the '${main.nodename}' pool`, kind: 'pool_restarts_disabled' },
        });
      });

      it('GET /api/queues/length and /api/queues report depths of configured and consumed queues', async () => {
        await sendTasks(
          broker.celery,
          [0, 1, 2].map(() => ({ name: 'tasks.noop', queue: queue('idle') })),
        );
        const lengths = await waitFor(
          'hc-idle to hold 3 messages',
          async () => {
            const res = await get('/api/queues/length', { as: 'viewer' });
            return res.body.active_queues?.some((q: { name: string; messages: number }) => q.name === queue('idle') && q.messages === 3)
              ? res
              : undefined;
          },
          10_000,
          200,
        );
        expect(lengths.status).toBe(200);
        // 'extra' is the queue an earlier test made a worker consume for a while: kept by design
        // (queue_retention_seconds) once a refresh saw it consumed, which depends on timing.
        const reported = lengths.body.active_queues.map((q: { name: string }) => q.name).filter((name: string) => name !== 'extra');
        expect(reported.sort()).toEqual([queue('auto'), queue('idle'), queue('main'), queue('shared')]);
        const list = await get('/api/queues', { as: 'viewer' });
        expect(list.status).toBe(200);
        expect(list.body).toContainEqual({ name: queue('idle'), messages: 3 });
        expect(list.body).toContainEqual({ name: queue('main'), messages: 0 });
        const v1 = await get('/api/v1/queues', { as: 'viewer' });
        expect(v1.body).toContainEqual(expect.objectContaining({ queue: queue('idle'), length: 3, workers: 0 }));
        expect(v1.body).toContainEqual(expect.objectContaining({ queue: queue('shared'), length: 0, workers: 2 }));
      });
    });

    describe('/api/v1/actions targets', () => {
      it("{ workers } runs on exactly those workers, with each one's reply", async () => {
        const res = await action({ command: 'ping', targets: { workers: [main.nodename, auto.nodename] } });
        expect(res.status).toBe(200);
        expect(res.body).toMatchObject({ command: 'ping', outcome: 'ok', destination: [main.nodename, auto.nodename] });
        expect(res.body.results.map((r: { worker: string; status: string }) => [r.worker, r.status])).toEqual([
          [main.nodename, 'ok'],
          [auto.nodename, 'ok'],
        ]);
      });

      it('{ pattern } reaches only the matching workers', async () => {
        const commands = await sentDuring(async () => {
          const res = await action({
            command: 'rate_limit',
            arguments: { task_name: 'tasks.noop', rate_limit: '5/m' },
            targets: { pattern: `hc${id}-m*@cap` },
          });
          expect(res.body).toMatchObject({ outcome: 'ok', destination: null, pattern: `hc${id}-m*@cap` });
          expect(res.body.results.map((r: { worker: string }) => r.worker)).toEqual([main.nodename]);
        });
        expect(commands).toEqual([sent('rate_limit', null)]);
        expect(await registered(main)).toContain('tasks.noop [rate_limit=5/m]');
        expect(await registered(auto)).toContain('tasks.noop');
        const removed = await action({
          command: 'rate_limit',
          arguments: { task_name: 'tasks.noop', rate_limit: '' },
          targets: { pattern: `hc${id}-m*@cap` },
        });
        expect(removed.body.results).toMatchObject([{ worker: main.nodename, status: 'ok', message: 'rate limit disabled successfully' }]);
      });

      it('{ queue } becomes the live consumers of that queue, named in destination', async () => {
        const shared = await action({ command: 'active_queues', targets: { queue: queue('shared') } });
        expect(shared.status).toBe(200);
        expect([...shared.body.destination].sort()).toEqual([auto.nodename, main.nodename].sort());
        const own = await action({ command: 'ping', targets: { queue: queue('main') } });
        expect(own.body).toMatchObject({ destination: [main.nodename], results: [{ worker: main.nodename, status: 'ok' }] });
        const nobody = await action({ command: 'ping', targets: { queue: queue('idle') } });
        expect(nobody.status).toBe(404);
      });

      it('dry_run validates and reports, and publishes nothing', async () => {
        const commands = await sentDuring(async () => {
          const res = await action({ command: 'pool_grow', arguments: { n: 1 }, targets: { workers: [main.nodename] }, dry_run: true });
          expect(res.body).toMatchObject({
            dryRun: true,
            outcome: 'dry_run',
            arguments: { n: 1 },
            results: [{ worker: main.nodename, status: 'dry_run' }],
          });
        });
        expect(commands).toEqual([]);
      });

      it('confirm: true polls stats until the pool really changed', async () => {
        const grown = await action({ command: 'pool_grow', arguments: { n: 1 }, targets: { workers: [main.nodename] }, confirm: true });
        expect(grown.body.results, logTail(main)).toMatchObject([
          { worker: main.nodename, status: 'ok', confirmed: true, confirmation: 'observed 3 pool processes (was 2)' },
        ]);
        const shrunk = await action({ command: 'pool_shrink', arguments: { n: 1 }, targets: { workers: [main.nodename] }, confirm: true });
        expect(shrunk.body.results, logTail(main)).toMatchObject([
          { status: 'ok', confirmed: true, confirmation: 'observed 2 pool processes (was 3)' },
        ]);
      });
    });

    describe('a worker the service has never heard of', () => {
      it('is found by asking the cluster (ping), right after it started', async () => {
        late = await start('late', { concurrency: 1, extraArgs: ['--without-heartbeat'] });
        // No worker-online, no heartbeats: the only way to know it is to ask.
        expect(service.service.workers.get(late.nodename)).toBeUndefined();
        const commands = await sentDuring(async () => {
          const res = await post(`/api/worker/pool/grow/${w(late.nodename)}`, { query: { n: '1' } });
          expect(res, logTail(late)).toMatchObject({ status: 200, body: { result: { worker: late.nodename, status: 'ok' } } });
        });
        expect(commands).toEqual([sent('ping', [late.nodename]), sent('pool_grow', [late.nodename])]);
        await waitForProcesses(late, 2);
        const listed = await get('/api/workers', { as: 'viewer', query: { refresh: 'true', status: 'true' } });
        expect(listed.body).toMatchObject({ [late.nodename]: true, [main.nodename]: true, [auto.nodename]: true });
      });
    });

    describe('refused requests: the right status, and nothing on the wire', () => {
      const ghost = () => node('ghost');
      const long = `${'w'.repeat(5000)}@cap`;
      const cases: Array<
        [scenario: string, status: number, request: () => Promise<HttpAnswer>, sends?: () => Array<ReturnType<typeof sent>>]
      > = [
        // Injection attempts in worker names (path segments are URL-decoded before validation).
        ['worker name with a quote', 400, () => post(`/api/worker/pool/grow/${w('a"b@h')}`, { query: { n: '1' } })],
        ['worker name with a newline', 400, () => post(`/api/worker/pool/grow/${w('x@h\n')}`, { query: { n: '1' } })],
        ['worker name that is a glob', 400, () => post(`/api/worker/pool/grow/${w('*@*')}`)],
        ['5000-character worker name', 400, () => post(`/api/worker/pool/shrink/${w(long)}`)],
        ['worker name ../..', 400, () => post(`/api/worker/shutdown/${w('../..')}`, { as: 'admin' })],
        [
          'workername form field with a glob',
          400,
          () => post('/api/task/rate-limit/tasks.add', { form: { workername: '*@*', ratelimit: '1/s' } }),
        ],
        [
          'workername missing (Flower would broadcast)',
          400,
          () => post('/api/task/timeout/tasks.sleep', { form: { soft: '1', hard: '2' } }),
        ],
        // ... in queue names
        [
          'queue name with a shell separator',
          400,
          () => post(`/api/worker/queue/add-consumer/${w(main.nodename)}`, { form: { queue: 'q;rm' } }),
        ],
        ['queue name ../..', 400, () => post(`/api/worker/queue/add-consumer/${w(main.nodename)}`, { form: { queue: '../..' } })],
        [
          'queue name that is a wildcard',
          400,
          () => post(`/api/worker/queue/cancel-consumer/${w(main.nodename)}`, { query: { queue: '*' } }),
        ],
        [
          '5000-character queue name',
          400,
          () => post(`/api/worker/queue/add-consumer/${w(main.nodename)}`, { form: { queue: 'q'.repeat(5000) } }),
        ],
        [
          "Celery's own pidbox exchange as a queue",
          400,
          () => post(`/api/worker/queue/add-consumer/${w(main.nodename)}`, { form: { queue: 'celery.pidbox' } }),
        ],
        ['queue as a JSON list', 400, () => post(`/api/worker/queue/add-consumer/${w(main.nodename)}`, { json: { queue: ['a', 'b'] } })],
        // ... in task names and ids, and values
        [
          'task name with a shell separator',
          400,
          () => post(`/api/task/rate-limit/${w('tasks.add;rm')}`, { form: { workername: main.nodename, ratelimit: '1/s' } }),
        ],
        [
          'task name ../..',
          400,
          () => post(`/api/task/timeout/${w('../..')}`, { form: { workername: main.nodename, soft: '1', hard: '2' } }),
        ],
        [
          '5000-character task name',
          400,
          () => post(`/api/task/rate-limit/${'t'.repeat(5000)}`, { form: { workername: main.nodename, ratelimit: '1/s' } }),
        ],
        [
          'rate limit with trailing text',
          400,
          () => post('/api/task/rate-limit/tasks.add', { form: { workername: main.nodename, ratelimit: '10/m;rm' } }),
        ],
        [
          'soft limit above hard',
          400,
          () => post('/api/task/timeout/tasks.add', { form: { workername: main.nodename, soft: '5', hard: '1' } }),
        ],
        [
          'task id with a control character (any other string is an id Celery accepts)',
          400,
          () => post(`/api/task/revoke/${w('abc\ndef')}`),
        ],
        ['n that is not a number', 400, () => post(`/api/worker/pool/grow/${w(main.nodename)}`, { query: { n: '1;rm' } })],
        ['n far too large', 400, () => post(`/api/worker/pool/grow/${w(main.nodename)}`, { form: { n: '100000' } })],
        // A bad parameter is refused before the service asks an unknown worker anything.
        [
          'bad n for a worker the service never heard of',
          400,
          () => post(`/api/worker/pool/grow/${w(late.nodename)}`, { query: { n: 'lots' } }),
        ],
        // /api/v1/actions
        ['actions: worker with a quote', 400, () => action({ command: 'ping', targets: { workers: ['a"b@h'] } })],
        ['actions: pattern *@* (everyone in disguise)', 400, () => action({ command: 'pool_grow', targets: { pattern: '*@*' } })],
        ['actions: no targets (never an accidental broadcast)', 400, () => action({ command: 'pool_grow', targets: {} })],
        ['actions: empty worker list', 400, () => action({ command: 'pool_grow', targets: { workers: [] } })],
        ['actions: queue target with a shell separator', 400, () => action({ command: 'ping', targets: { queue: 'q;rm' } })],
        ['actions: unknown command', 400, () => action({ command: 'rm -rf', targets: { workers: [main.nodename] } })],
        [
          'actions: unknown argument',
          400,
          () => action({ command: 'pool_grow', arguments: { n: 1, evil: true }, targets: { workers: [main.nodename] } }),
        ],
        ['actions: unknown field', 400, () => action({ command: 'ping', targets: { workers: [main.nodename] }, destination: null })],
        [
          'actions: timeout_ms not a number',
          400,
          () => action({ command: 'ping', targets: { workers: [main.nodename] }, timeout_ms: '9999999' }),
        ],
        ['actions: a queue nobody consumes', 404, () => action({ command: 'pool_grow', targets: { queue: 'nobody-consumes' } })],
        // Bodies
        [
          'malformed JSON',
          400,
          () => post('/api/v1/actions', { raw: { body: '{"command": "ping", "targets": ', type: 'application/json' } }),
        ],
        [
          'JSON body over max_body_bytes',
          413,
          () => action({ command: 'ping', targets: { workers: [main.nodename] }, arguments: { pad: 'x'.repeat(70 * 1024) } }),
        ],
        [
          'form body over max_body_bytes',
          413,
          () => post(`/api/worker/pool/grow/${w(main.nodename)}`, { form: { n: '1', pad: 'x'.repeat(70 * 1024) } }),
        ],
        // Credentials and roles
        ['no credentials', 401, () => post(`/api/worker/pool/grow/${w(main.nodename)}`, { as: null })],
        [
          'wrong password',
          401,
          () => post(`/api/worker/pool/grow/${w(main.nodename)}`, { as: { username: 'oper', password: 'not-the-password' } }),
        ],
        [
          'unknown user',
          401,
          () =>
            post('/api/v1/actions', {
              as: { username: 'mallory', password: passwords.admin },
              json: { command: 'ping', targets: { workers: [main.nodename] } },
            }),
        ],
        ['viewer growing a pool', 403, () => post(`/api/worker/pool/grow/${w(main.nodename)}`, { as: 'viewer' })],
        ['viewer running an action', 403, () => action({ command: 'ping', targets: { workers: [main.nodename] } }, 'viewer')],
        ['operator shutting down a known worker', 403, () => post(`/api/worker/shutdown/${w(main.nodename)}`)],
        ['operator shutting down a worker the service never heard of', 403, () => post(`/api/worker/shutdown/${w(late.nodename)}`)],
        ['operator restarting a pool', 403, () => post(`/api/worker/pool/restart/${w(auto.nodename)}`)],
        ['operator revoking with terminate', 403, () => post(`/api/task/revoke/${randomUUID()}`, { query: { terminate: 'true' } })],
        ['operator: shutdown action', 403, () => action({ command: 'shutdown', targets: { workers: [main.nodename] } })],
        [
          'operator: revoke action with terminate',
          403,
          () => action({ command: 'revoke', arguments: { task_id: randomUUID(), terminate: true }, targets: { all: true } }),
        ],
        // Unknown worker: asked once (ping), never commanded.
        [
          'a worker nobody runs',
          404,
          () => post(`/api/worker/pool/grow/${w(ghost())}`, { query: { n: '1' } }),
          () => [sent('ping', [ghost()])],
        ],
      ];

      it.each(cases)('%s → %s', async (_scenario, status, request, sends) => {
        let answer: HttpAnswer | undefined;
        const commands = await sentDuring(async () => {
          answer = await request();
        });
        expect(answer!.status, JSON.stringify(answer!.body).slice(0, 500)).toBe(status);
        expect(commands, describeCommands(spy.commands.slice(-5))).toEqual(sends ? sends() : []);
      });
    });

    describe('faults', () => {
      it('a worker that stops between request and reply is reported no_reply, and the command is not retried', async () => {
        late.kill('SIGSTOP');
        let continued = false;
        try {
          const mark = spy.mark();
          const res = await action({ command: 'pool_grow', arguments: { n: 1 }, targets: { workers: [late.nodename] }, timeout_ms: 1500 });
          expect(res.body).toMatchObject({
            outcome: 'no_reply',
            results: [{ worker: late.nodename, status: 'no_reply', message: 'no reply within 1500 ms' }],
          });
          await spy.barrier();
          expect(spy.since(mark).map((c) => c.method)).toEqual(['pool_grow']);

          late.kill('SIGCONT');
          continued = true;
          // Celery keeps the request in the stopped worker's mailbox and runs it once it resumes
          // (the 5.2 worker ignores `expires`): exactly why the service must never resend it.
          await waitForProcesses(late, 3);
          await new Promise((r) => setTimeout(r, 1500));
          await spy.barrier();
          expect(spy.since(mark).map((c) => c.method)).toEqual(['pool_grow']);
        } finally {
          if (!continued) late.kill('SIGCONT');
        }
      });

      it('with the broker down a request fails fast with 503, and nothing is sent once it is back', async () => {
        const proxy = new TcpProxy('127.0.0.1', brokerPort);
        await proxy.listen();
        proxies.push(proxy);
        const viaProxy = broker.exporterArgs.map((arg) => arg.replace(`127.0.0.1:${brokerPort}/`, `127.0.0.1:${proxy.port}/`));
        const cut = await startService(viaProxy, ['--reconnect-initial-delay-seconds', '0.1', '--reconnect-max-delay-seconds', '0.5']);
        await waitFor('proxied service ready', async () => ((await cut.get('/-/ready')).status === 200 ? true : undefined), 20_000, 100);

        proxy.pause();
        await waitFor('the proxied service to see the outage', () => (!cut.service.transport.isConnected() ? true : undefined), 20_000, 20);
        const mark = spy.mark();
        const flower = await call(cut, 'POST', '/api/task/rate-limit/tasks.noop', {
          form: { workername: main.nodename, ratelimit: '7/m' },
        });
        expect(flower).toEqual({ status: 503, body: { error: 'broker unavailable: nothing was sent' } });
        const v1 = await call(cut, 'POST', '/api/v1/actions', {
          json: { command: 'pool_grow', arguments: { n: 1 }, targets: { workers: [main.nodename] } },
        });
        expect(v1).toEqual({ status: 503, body: { error: 'broker unavailable: nothing was sent' } });
        expect(await commandsTotal(cut, 'pool_grow', 'broker_unavailable')).toBe(1);

        proxy.resume();
        await waitFor(
          'proxied service ready again',
          async () => ((await cut.get('/-/ready')).status === 200 ? true : undefined),
          20_000,
          100,
        );
        await new Promise((r) => setTimeout(r, 1000));
        await spy.barrier();
        expect(spy.since(mark), describeCommands(spy.since(mark))).toEqual([]);
        expect((await registered(main)).join('\n')).not.toContain('7/m');
        expect(await poolProcesses(main)).toBe(2);
        await cut.stop();
      });
    });

    describe('audit and metrics', () => {
      it('a control action is audited with who, what, which workers and results, and counted in /metrics', async () => {
        const before = await commandsTotal(service, 'pool_shrink', 'ok');
        const res = await post(`/api/worker/pool/shrink/${w(late.nodename)}`, { form: { n: '1' } });
        expect(res.status).toBe(200);
        expect(await commandsTotal(service, 'pool_shrink', 'ok')).toBe(before + 1);

        const audit = await get('/api/v1/audit', { as: 'viewer', query: { kind: 'control', limit: '5' } });
        expect(audit.status).toBe(200);
        expect(audit.body[0]).toMatchObject({
          kind: 'control',
          by: { actor: 'basic:oper', kind: 'basic', role: 'operator', via: 'header' },
          command: 'pool_shrink',
          arguments: { n: 1 },
          targets: { workers: [late.nodename] },
          dry_run: false,
          outcome: 'ok',
          results: [{ worker: late.nodename, status: 'ok', message: 'pool will shrink' }],
          time: expect.any(String),
        });
        const all = (await get('/api/v1/audit', { as: 'viewer', query: { kind: 'control', limit: '1000' } })).body as Array<{
          command: string;
          outcome: string;
          by: { actor: string };
        }>;
        expect(all.map((r) => `${r.by.actor} ${r.command} ${r.outcome}`)).toEqual(
          expect.arrayContaining([
            'basic:oper pool_grow ok',
            'basic:oper pool_grow dry_run',
            'basic:oper pool_grow no_reply',
            'basic:admin revoke ok',
            'basic:admin pool_restart ok',
            'basic:admin pool_restart error',
          ]),
        );
        expect(await commandsTotal(service, 'pool_grow', 'no_reply')).toBe(1);
        expect(await commandsTotal(service, 'pool_grow', 'dry_run')).toBe(1);
      });
    });

    describe('shutdown (last: the worker goes away)', () => {
      it('worker/shutdown (admin) makes the worker exit', async () => {
        const commands = await sentDuring(async () => {
          const res = await post(`/api/worker/shutdown/${w(late.nodename)}`, { as: 'admin' });
          expect(res).toMatchObject({
            status: 200,
            body: { message: 'Shutting down!', result: { worker: late.nodename, status: 'sent' } },
          });
        });
        // A ping first unless the service heard of the worker lately: every (re)subscribing
        // service broadcasts the heartbeat wake-up, which even a --without-heartbeat worker answers
        // with a worker-heartbeat event (the proxied service in the outage test did, just before).
        expect(commands.filter((c) => c.method !== 'ping')).toEqual([sent('shutdown', [late.nodename])]);
        expect(commands.filter((c) => c.method === 'ping').every((c) => c.destination?.join() === late.nodename)).toBe(true);
        const code = await Promise.race([late.exited, new Promise<'running'>((r) => setTimeout(() => r('running'), 20_000))]);
        expect(code, logTail(late)).not.toBe('running');
        expect(late.logs()).toContain('Got shutdown from remote');
      });
    });
  });
}
