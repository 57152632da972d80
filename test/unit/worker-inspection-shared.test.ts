import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import type { WorkerEvent } from '../../src/celery/events.js';
import type { ControlClient, ControlResult } from '../../src/control/client.js';
import { WorkerSnapshot } from '../../src/control/worker-snapshot.js';
import { WorkerInspector } from '../../src/exporter/worker-inspector.js';
import { WorkerRegistry, type SavedWorker } from '../../src/state/workers.js';
import type { BrokerTransport, ControlRequest } from '../../src/transport/transport.js';
import { capturingLogger } from '../support/fake-github.js';

const REPLIES: Record<string, unknown> = {
  stats: { pool: { 'max-concurrency': 4, processes: [11, 12, 13] } },
  active_queues: [{ name: 'q1' }, { name: 'q2' }],
  registered: ['tasks.add'],
};

/** The exporter's inspector and the workers snapshot over one registry, as the service wires them. */
function setup() {
  const clock = new ManualClock();
  const workers = new WorkerRegistry(clock, { purgeAfterSeconds: 600 });
  const broadcasts: ControlRequest[] = [];
  const transport = {
    isConnected: () => true,
    broadcast: async (request: ControlRequest) => {
      broadcasts.push(request);
      return (request.destination ?? []).map((worker) => ({ worker, value: REPLIES[request.method] }));
    },
  } as unknown as BrokerTransport;
  let hold: Promise<void> = Promise.resolve();
  const runs: string[] = [];
  const control = {
    run: async (method: string) => {
      runs.push(method);
      await hold;
      const results = ['a@h', 'b@h'].map((worker) => ({ worker, status: 'ok', reply: REPLIES[method] ?? [] }));
      return { results } as unknown as ControlResult;
    },
  } as unknown as ControlClient;
  const { logger } = capturingLogger();
  const inspector = new WorkerInspector(transport, workers, clock, logger, { intervalSeconds: 30, timeoutMs: 1000 });
  const snapshot = new WorkerSnapshot(control, clock, logger, { refreshSeconds: 30, forgetSeconds: 600 }, workers);
  const heartbeat = (hostname: string) =>
    workers.handle({ type: 'worker-heartbeat', hostname, timestamp: clock.nowMs() / 1000, freq: 30, processed: 0, pid: 1 } as WorkerEvent);
  const holdRounds = () => {
    let release!: () => void;
    hold = new Promise<void>((r) => (release = r));
    return release;
  };
  return { clock, workers, broadcasts, runs, inspector, snapshot, heartbeat, holdRounds };
}

describe('one inspect round feeds both worker views', () => {
  it("records a snapshot round's stats and active_queues answers for the exporter, so the inspector does not ask again", async () => {
    const { clock, workers, broadcasts, inspector, snapshot, heartbeat } = setup();
    heartbeat('a@h');
    await snapshot.refresh();
    snapshot.stop();
    expect(workers.get('a@h')).toMatchObject({ queues: ['q1', 'q2'], processes: 3, inspectedAt: clock.nowMs() });
    // A worker the registry has not heard of yet gets no record from an answer alone.
    expect(workers.get('b@h')).toBeUndefined();
    await inspector.tick();
    expect(broadcasts).toEqual([]);

    clock.advance(30_000);
    heartbeat('a@h');
    await inspector.tick();
    expect(broadcasts.map((b) => [b.method, b.destination])).toEqual([
      ['active_queues', ['a@h']],
      ['stats', ['a@h']],
    ]);
  });

  it('lets the inspector wait for a snapshot round under way instead of asking the same workers at once', async () => {
    const { workers, broadcasts, runs, inspector, snapshot, heartbeat, holdRounds } = setup();
    heartbeat('a@h');
    const release = holdRounds();
    const round = snapshot.refresh();
    await inspector.tick();
    expect(runs).toContain('stats');
    expect(broadcasts).toEqual([]);
    release();
    await round;
    snapshot.stop();
    expect(workers.get('a@h')?.queues).toEqual(['q1', 'q2']);
    await inspector.tick();
    expect(broadcasts).toEqual([]);
  });

  it('leaves a worker read back from the file alone until it is heard from', async () => {
    const { workers, snapshot } = setup();
    const saved: SavedWorker = { hostname: 'a@h', freq: 30, queues: ['old'], processes: 1 };
    workers.restore(saved);
    await snapshot.refresh();
    snapshot.stop();
    expect(workers.get('a@h')).toMatchObject({ queues: ['old'], processes: 1, restored: true });
  });

  it('still inspects on its own, by name, when nobody uses the snapshot', async () => {
    const { workers, broadcasts, inspector, heartbeat } = setup();
    heartbeat('a@h');
    await inspector.tick();
    expect(broadcasts.map((b) => b.destination)).toEqual([['a@h'], ['a@h']]);
    expect(workers.get('a@h')).toMatchObject({ queues: ['q1', 'q2'], processes: 3 });
  });
});
