import { describe, expect, it } from 'vitest';
import type { WorkerEvent } from '../../src/celery/events.js';
import { ManualClock } from '../../src/clock.js';
import { lineChart, niceCeiling, sparkline } from '../../src/console/charts.js';
import { healthBanner, workerState, type ClusterHealth } from '../../src/console/health.js';
import type { ConsoleContext } from '../../src/console/layout.js';
import { queuesPage } from '../../src/console/queues.js';
import { failureTone, workersPage } from '../../src/console/workers.js';
import { brokerStatusObserver, type BrokerStatus } from '../../src/transport/broker-status.js';
import { ClusterHistory, type ClusterReading } from '../../src/state/cluster-history.js';
import { InFlightTasks } from '../../src/state/in-flight-tasks.js';
import { WorkerRegistry } from '../../src/state/workers.js';

const T0 = 1_800_000_000_000; // ms, a multiple of 10 s
const STEP = 10_000;

const reading = (r: Partial<ClusterReading> = {}): ClusterReading => ({
  brokerUp: true,
  workersUp: 1,
  processes: 4,
  succeeded: 0,
  failed: 0,
  retried: 0,
  queues: [],
  workers: [],
  ...r,
});

const history = (points = 6, caps = { maxQueues: 2, maxWorkers: 2 }) => new ClusterHistory({ stepMs: STEP, points, ...caps });
const values = (h: ClusterHistory, key: string) => [...(h.series(key)?.values ?? [])];

const ctx: ConsoleContext = {
  principal: { kind: 'basic', name: 'vera', role: 'viewer', via: 'session' },
  csrfToken: '',
  prefix: '',
  can: () => false,
  href: (path) => path,
};
const healthy: ClusterHealth = { connected: true, subscribed: true, reconnects: 0, lastEventAtMs: T0, eventsDropped: 0 };

describe('cluster history ring', () => {
  it('stores counters as the increase per step (from 0 at the process start) and gauges as read', () => {
    const h = history(4);
    h.record(reading({ succeeded: 100, workersUp: 2 }), T0);
    h.record(reading({ succeeded: 130, workersUp: 3 }), T0 + STEP);
    h.record(reading({ succeeded: 131, workersUp: 3 }), T0 + 2 * STEP);
    expect(values(h, 'succeeded')).toEqual([NaN, 100, 30, 1]);
    expect(values(h, 'workers_up')).toEqual([NaN, 2, 3, 3]);
    expect(h.series('succeeded')!.startMs).toBe(T0 - STEP);
  });

  it('a step without a reading is a gap (NaN), never the value of a window ago', () => {
    const h = history(4);
    for (let i = 0; i < 4; i++) h.record(reading({ workersUp: i + 1 }), T0 + i * STEP);
    h.record(reading({ workersUp: 9 }), T0 + 6 * STEP);
    expect(values(h, 'workers_up')).toEqual([4, NaN, NaN, 9]);
  });

  it('a counter that went back (its series was removed) counts 0, not a negative rate', () => {
    const h = history(3);
    h.record(reading({ failed: 50 }), T0);
    h.record(reading({ failed: 10 }), T0 + STEP);
    expect(values(h, 'failed').at(-1)).toBe(0);
  });

  it('caps queues and workers like the metric series, and drops those not read for a whole window', () => {
    const h = history(3, { maxQueues: 1, maxWorkers: 1 });
    const q = (queue: string) => ({ queue, depth: 5, reserved: 1 });
    const w = (hostname: string) => ({ hostname, succeeded: 1, failed: 0, retried: 0 });
    h.record(reading({ queues: [q('a'), q('b')], workers: [w('w1'), w('w2')] }), T0);
    expect(h.queues()).toEqual(['a']);
    expect(h.workerSeries('w2').succeeded).toBeUndefined();
    expect(h.refused).toBe(2 + 3);
    for (let i = 1; i <= 3; i++) h.record(reading({ queues: [q('b')] }), T0 + i * STEP);
    expect(h.queues()).toEqual(['b']);
    expect(h.workerSeries('w1').succeeded).toBeUndefined();
    expect(h.bytes).toBe(6 * 3 * 4 + 2 * 3 * 4);
  });
});

describe('charts', () => {
  it.each([
    [0, 1],
    [0.3, 0.5],
    [7, 10],
    [12, 20],
    [450, 500],
    [501, 1000],
  ])('the y axis of a maximum of %d ends at %d', (max, top) => {
    expect(niceCeiling(max)).toBe(top);
  });

  it('draws a gap where readings are missing instead of bridging it, and escapes labels', () => {
    const h = history(4);
    h.record(reading({ workersUp: 1 }), T0);
    h.record(reading({ workersUp: 2 }), T0 + STEP);
    h.record(reading({ workersUp: 2 }), T0 + 3 * STEP);
    const svg = lineChart({
      id: 'c',
      title: 'Workers',
      unit: 'count',
      lines: [{ label: '<q>', series: h.series('workers_up'), tone: 'ok' }],
    }).text;
    const d = /<path class="line ok" d="([^"]*)"/.exec(svg)![1]!;
    expect(d.match(/M/g)).toHaveLength(2);
    expect(svg).toContain('&lt;q&gt;');
    expect(svg).not.toContain('<q>');
    expect(svg).toContain('−1 min');
  });

  it('says there is nothing yet rather than drawing an empty frame', () => {
    expect(lineChart({ id: 'c', title: 'Tasks', unit: 'per minute', lines: [] }).text).toContain('no readings yet');
    expect(sparkline(undefined, 'ok', 'x').text).toBe('');
  });
});

describe('broker status and worker state during a broker outage', () => {
  const hb = (hostname: string): WorkerEvent => ({ type: 'worker-heartbeat', hostname, timestamp: T0 / 1000, freq: 2 }) as WorkerEvent;

  it('records when the connection changed, once per change', () => {
    let now = T0;
    const status: BrokerStatus = { connected: false, subscribed: false, reconnects: 0 };
    const logger = { info: () => {}, warn: () => {}, debug: () => {} } as never;
    const o = brokerStatusObserver(status, logger, 'amqp://x', () => now);
    o.connected();
    expect(status.since).toBe(T0);
    now += 5000;
    o.disconnected(new Error('ECONNREFUSED'));
    now += 5000;
    o.disconnected(new Error('ECONNREFUSED'));
    expect(status).toMatchObject({ connected: false, since: T0 + 5000 });
  });

  it('a worker that was up when the broker went away is unknown, not down; the banner says why', () => {
    const clock = new ManualClock(T0);
    const registry = new WorkerRegistry(clock, { purgeAfterSeconds: 600 });
    registry.handle(hb('celery@up'));
    clock.advance(10_000);
    registry.handle(hb('celery@later'));
    const outage: ClusterHealth = { ...healthy, connected: false, subscribed: false, since: clock.nowMs() + 1000, reconnects: 3 };
    clock.advance(60_000);
    const state = (h: string, health: ClusterHealth) => workerState(registry, registry.get(h)!, health, clock.nowMs());
    expect([state('celery@up', outage), state('celery@later', outage)]).toEqual(['down', 'unknown']);
    expect([state('celery@up', healthy), state('celery@later', healthy)]).toEqual(['down', 'down']);
    const banner = healthBanner({ ...outage, lastError: 'connect ECONNREFUSED' }, 1, clock.nowMs()).text;
    expect(banner).toContain('Broker unreachable');
    expect(banner).toContain('1 worker that was up shows as <em>unknown</em>');
    const page = workersPage(ctx, { workers: registry, history: history(), health: outage, nowMs: clock.nowMs() });
    expect(page).toMatch(/data-worker="celery@later"[\s\S]*?state-unknown/);
  });
});

describe('workers list: failures make a worker look unhealthy', () => {
  it.each([
    [100, 0, ''],
    [95, 5, ''],
    [80, 20, 'warn'],
    [0, 40, 'bad'],
    [0, 2, 'warn'],
  ])('%d succeeded and %d failed in the last hour read as %j', (ok, failed, tone) => {
    expect(failureTone(ok, failed)).toBe(tone);
  });

  it('a worker failing everything shows its failures and a red row', () => {
    const clock = new ManualClock(T0);
    const registry = new WorkerRegistry(clock, { purgeAfterSeconds: 600 });
    registry.handle({ type: 'worker-heartbeat', hostname: 'celery@bad', timestamp: T0 / 1000, freq: 2 } as WorkerEvent);
    const h = history();
    h.record(reading({ workers: [{ hostname: 'celery@bad', succeeded: 0, failed: 0, retried: 0 }] }), T0);
    h.record(reading({ workers: [{ hostname: 'celery@bad', succeeded: 0, failed: 12, retried: 0 }] }), T0 + STEP);
    const page = workersPage(ctx, { workers: registry, history: h, health: healthy, nowMs: clock.nowMs() });
    expect(page).toContain('<tr data-worker="celery@bad" class="bad">');
    expect(page).toContain('<td class="num failed bad">12</td>');
    expect(page).toContain('<td class="num failure-rate bad">100 %</td>');
  });
});

describe('queues: messages workers hold are not "0 waiting"', () => {
  it('counts received-but-not-started tasks per queue as reserved, started ones as running, finished ones not at all', () => {
    const tasks = new InFlightTasks(100);
    const mark = (id: string, queue: string | undefined, ...types: Parameters<InFlightTasks['markSeen']>[1][]) => {
      const t = tasks.getOrCreate(id);
      if (queue) t.queue = queue;
      for (const type of types) tasks.markSeen(t, type);
    };
    for (let i = 0; i < 12; i++) mark(`r${i}`, 'emails', 'task-sent', 'task-received');
    mark('s1', 'emails', 'task-received', 'task-started');
    mark('d1', 'emails', 'task-received', 'task-started', 'task-succeeded');
    mark('x1', 'emails', 'task-received', 'task-retried');
    mark('q1', undefined, 'task-received');
    mark('p1', 'emails', 'task-sent');
    const open = tasks.openByQueue('celery');
    expect(Object.fromEntries(open)).toEqual({ emails: { reserved: 12, running: 1 }, celery: { reserved: 1, running: 0 } });

    const registry = new WorkerRegistry(new ManualClock(T0), { purgeAfterSeconds: 600 });
    const page = queuesPage(ctx, [{ queue: 'emails', length: 0, workers: 1, processes: 4 } as never], registry, {
      only: undefined,
      nowMs: T0,
      open,
      history: history(),
    });
    expect(page).toContain('<strong>0</strong> messages waiting');
    expect(page).toContain('<strong>12</strong> reserved by workers');
    expect(page).toMatch(/<td class="num reserved">12<\/td><td class="num running">1<\/td>/);
  });
});
