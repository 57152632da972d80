import { afterEach, describe, expect, it, vi } from 'vitest';
import type { WorkerEvent } from '../../src/celery/events.js';
import type { Clock } from '../../src/clock.js';
import type { ControlClient, ControlResult, Targets } from '../../src/control/client.js';
import { WorkerSnapshot } from '../../src/control/worker-snapshot.js';
import { WorkerInspector } from '../../src/exporter/worker-inspector.js';
import { INSPECT_METHODS } from '../../src/state/inspect-replies.js';
import { WorkerRegistry } from '../../src/state/workers.js';
import type { BrokerTransport, ControlRequest } from '../../src/transport/transport.js';
import { capturingLogger } from '../support/fake-github.js';

const START = 1_800_000_000_000;
const INSPECT_INTERVAL_S = 30;
const REFRESH_S = 60;

interface Sent {
  /** Seconds since the start. */
  at: number;
  by: 'inspector' | 'snapshot';
  method: string;
  to: readonly string[] | null;
  /** What every worker answered to it. */
  reply: unknown;
}

/**
 * The exporter's inspector and Flower's workers snapshot over one registry, as the service wires
 * them, both in use, on fake timers: every inspect command either sends is recorded at the
 * moment it is sent. `answering` are the workers that answer a round addressed to everyone.
 */
function cluster(answering: string[]) {
  vi.useFakeTimers({ now: START });
  const clock: Clock = { nowMs: () => Date.now() };
  const workers = new WorkerRegistry(clock, { purgeAfterSeconds: 600 });
  const sent: Sent[] = [];
  const send = (by: Sent['by'], method: string, to: readonly string[] | null) => {
    // Each answer differs from the last (a counter in stats), so a test can tell whose it shows.
    const reply =
      method === 'stats'
        ? { pool: { 'max-concurrency': 2, processes: [11, 12] }, total: { 'tasks.add': sent.length } }
        : method === 'active_queues'
          ? [{ name: 'q1' }]
          : [];
    sent.push({ at: (Date.now() - START) / 1000, by, method, to, reply });
    return { workers: to ?? answering, reply };
  };
  const transport = {
    isConnected: () => true,
    broadcast: (request: ControlRequest) => {
      const { workers: to, reply } = send('inspector', request.method, request.destination);
      return Promise.resolve(to.map((worker) => ({ worker, value: reply })));
    },
  } as unknown as BrokerTransport;
  const control = {
    run: (method: string, _args: unknown, targets: Targets) => {
      const { workers: to, reply } = send('snapshot', method, 'workers' in targets ? targets.workers : null);
      return Promise.resolve({ results: to.map((worker) => ({ worker, status: 'ok', reply })) } as unknown as ControlResult);
    },
  } as unknown as ControlClient;
  const { logger } = capturingLogger();
  const inspector = new WorkerInspector(transport, workers, clock, logger, { intervalSeconds: INSPECT_INTERVAL_S, timeoutMs: 1000 });
  const snapshot = new WorkerSnapshot(control, clock, logger, { refreshSeconds: REFRESH_S, forgetSeconds: 600 }, workers);
  /** A heartbeat that keeps the worker alive for the whole test. */
  const heartbeat = (hostname: string) =>
    workers.handle({ type: 'worker-heartbeat', hostname, timestamp: Date.now() / 1000, freq: 3600, processed: 0, pid: 1 } as WorkerEvent);
  /** Fake time up to `seconds` since the start, a second at a time (the inspector ticks each second). */
  const runUntil = async (seconds: number) => {
    while (Date.now() < START + seconds * 1000) await vi.advanceTimersByTimeAsync(1000);
  };
  const stop = () => {
    inspector.stop();
    snapshot.stop();
  };
  const times = (method: string, by?: Sent['by']) =>
    sent.filter((s) => s.method === method && (by === undefined || s.by === by)).map((s) => s.at);
  return { sent, inspector, snapshot, heartbeat, runUntil, stop, times };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('one sender per inspect method, every answer in both worker views', () => {
  it('asks stats and active_queues once per inspect interval and the other six once per refresh period, with /api/workers in use', async () => {
    const { inspector, snapshot, heartbeat, runUntil, stop, times } = cluster(['a@h']);
    heartbeat('a@h');
    inspector.start();
    await snapshot.use();
    await runUntil(4 * INSPECT_INTERVAL_S - 1);
    stop();
    for (const method of ['stats', 'active_queues']) expect(times(method), method).toEqual([0, 30, 60, 90]);
    for (const method of INSPECT_METHODS.filter((m) => m !== 'stats' && m !== 'active_queues'))
      expect(times(method), method).toEqual([0, 60]);
  });

  it("shows the inspector's newer stats and active_queues answers in the workers view", async () => {
    const { sent, inspector, snapshot, heartbeat, runUntil, stop } = cluster(['a@h']);
    heartbeat('a@h');
    inspector.start();
    await snapshot.use();
    await runUntil(INSPECT_INTERVAL_S + 1);
    stop();
    const byInspector = sent.filter((s) => s.by === 'inspector');
    expect(byInspector.map((s) => [s.at, s.method])).toEqual([
      [30, 'active_queues'],
      [30, 'stats'],
    ]);
    const stats = byInspector.find((s) => s.method === 'stats')!.reply;
    expect(snapshot.get('a@h')).toMatchObject({ stats, timestamp: (START + 30_000) / 1000 });
    expect(snapshot.all().get('a@h')?.stats).toEqual(stats);
    // Still the eight methods Flower shows, in its order.
    expect(Object.keys(snapshot.get('a@h')!)).toEqual(['timestamp', ...INSPECT_METHODS]);
  });

  it('asks a worker the inspector never asks (no heartbeat) for stats and active_queues in each background round, by name', async () => {
    const { sent, inspector, snapshot, heartbeat, runUntil, stop, times } = cluster(['a@h', 'quiet@h']);
    heartbeat('a@h');
    inspector.start();
    await snapshot.use();
    await runUntil(REFRESH_S + 1);
    stop();
    const statsAtRefresh = sent.filter((s) => s.at === REFRESH_S && s.method === 'stats').map((s) => `${s.by} → ${s.to?.join()}`);
    expect(statsAtRefresh.sort()).toEqual(['inspector → a@h', 'snapshot → quiet@h']);
    expect(times('registered')).toEqual([0, 60]);
    expect(Object.keys(snapshot.get('quiet@h')!)).toEqual(['timestamp', ...INSPECT_METHODS]);
    expect(snapshot.get('quiet@h')?.timestamp).toBe((START + REFRESH_S * 1000) / 1000);
  });

  it('lists a new worker once a background round reached it, with the stats the inspector already had', async () => {
    const answering = ['a@h'];
    const { sent, inspector, snapshot, heartbeat, runUntil, stop } = cluster(answering);
    heartbeat('a@h');
    inspector.start();
    await snapshot.use();
    heartbeat('b@h');
    answering.push('b@h');
    await runUntil(2);
    // The inspector asked the new worker within a tick; Flower lists it after a round of its own.
    expect(sent.filter((s) => s.by === 'inspector').map((s) => [s.at, s.method, s.to])).toEqual([
      [1, 'active_queues', ['b@h']],
      [1, 'stats', ['b@h']],
    ]);
    expect(snapshot.get('b@h')).toBeUndefined();
    expect([...snapshot.all().keys()]).toEqual(['a@h']);
    await runUntil(REFRESH_S);
    stop();
    const stats = sent.filter((s) => s.method === 'stats' && s.to?.includes('b@h')).at(-1)!;
    expect(stats).toMatchObject({ at: 31, by: 'inspector' });
    expect(Object.keys(snapshot.get('b@h')!)).toEqual(['timestamp', ...INSPECT_METHODS]);
    expect(snapshot.get('b@h')?.stats).toEqual(stats.reply);
  });
});
