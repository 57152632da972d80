import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import type { WorkerEvent } from '../../src/celery/events.js';
import { WorkerRegistry } from '../../src/state/workers.js';

const T0 = 1_800_000_000; // seconds
function hb(overrides: Partial<WorkerEvent> = {}): WorkerEvent {
  return { type: 'worker-heartbeat', hostname: 'celery@a', timestamp: T0, freq: 2, active: 1, processed: 5, ...overrides } as WorkerEvent;
}

function setup(options: { workerTimeoutSeconds?: number; purgeAfterSeconds?: number } = {}) {
  const clock = new ManualClock(T0 * 1000);
  const registry = new WorkerRegistry(clock, { purgeAfterSeconds: 600, ...options });
  const alive = () => registry.isAlive(registry.get('celery@a')!);
  return { clock, registry, alive };
}

describe('worker liveness (Celery: last heartbeat received + 2 × freq)', () => {
  it('is alive until 2 × freq after the last heartbeat was received, then not', () => {
    const { clock, registry, alive } = setup();
    registry.handle(hb({ type: 'worker-online' }));
    clock.advance(3999);
    expect(alive()).toBe(true);
    clock.advance(1);
    expect(alive()).toBe(false);
  });

  it('uses our receive time, so a worker whose clock is 300 s off is not marked dead', () => {
    const { clock, registry, alive } = setup();
    registry.handle(hb({ timestamp: T0 - 300 }));
    clock.advance(1000);
    expect(alive()).toBe(true);
    registry.handle(hb({ timestamp: T0 + 600 }));
    expect(alive()).toBe(true);
    expect(registry.get('celery@a')!.clockSkewSeconds).toBeCloseTo(599, 0);
  });

  it('worker-offline ends liveness at once', () => {
    const { clock, registry, alive } = setup();
    registry.handle(hb());
    clock.advance(100);
    registry.handle(hb({ type: 'worker-offline', timestamp: T0 + 0.1 }));
    expect(alive()).toBe(false);
  });

  it('a heartbeat sent before the offline but delivered after it does not resurrect the worker', () => {
    const { registry, alive } = setup();
    registry.handle(hb({ timestamp: T0 }));
    registry.handle(hb({ type: 'worker-offline', timestamp: T0 + 2 }));
    registry.handle(hb({ timestamp: T0 + 1 }));
    expect(alive()).toBe(false);
  });

  it('a restart under the same name (heartbeat sent after the offline) brings it back once', () => {
    const { registry, alive } = setup();
    registry.handle(hb({ type: 'worker-offline', timestamp: T0 }));
    registry.handle(hb({ type: 'worker-online', timestamp: T0 + 5 }));
    expect(alive()).toBe(true);
    expect(registry.size).toBe(1);
  });

  it('merges fields: the freq=5 wake-up heartbeat keeps active/processed and widens the window', () => {
    const { clock, registry, alive } = setup();
    registry.handle(hb({ active: 3, processed: 9 }));
    registry.handle({ type: 'worker-heartbeat', hostname: 'celery@a', timestamp: T0, freq: 5, sw_ident: 'py-celery' } as WorkerEvent);
    const w = registry.get('celery@a')!;
    expect([w.active, w.processed, w.freq]).toEqual([3, 9, 5]);
    clock.advance(9000);
    expect(alive()).toBe(true);
  });

  it('a fixed worker_timeout replaces the 2 × freq rule', () => {
    const { clock, registry, alive } = setup({ workerTimeoutSeconds: 30 });
    registry.handle(hb());
    clock.advance(29_000);
    expect(alive()).toBe(true);
    clock.advance(1000);
    expect(alive()).toBe(false);
  });

  it('purges a worker after the purge period counted from when it stopped being alive', () => {
    const { clock, registry } = setup({ purgeAfterSeconds: 60 });
    registry.handle(hb());
    clock.advance(4000 + 59_000);
    expect(registry.purge()).toEqual([]);
    clock.advance(1000);
    expect(registry.purge()).toEqual(['celery@a']);
    expect(registry.size).toBe(0);
  });

  it('soleQueue answers only for single-queue workers', () => {
    const { registry } = setup();
    registry.handle(hb());
    registry.handle(hb({ hostname: 'celery@b' }));
    registry.recordInspection('celery@a', { queues: ['images'], processes: 4 });
    registry.recordInspection('celery@b', { queues: ['a', 'b'] });
    expect(registry.soleQueue('celery@a')).toBe('images');
    expect(registry.soleQueue('celery@b')).toBeUndefined();
    expect(registry.soleQueue('celery@nobody')).toBeUndefined();
  });
});

describe('cluster queries', () => {
  it('consumersOf: the live workers whose active_queues include the queue, and no dead one', () => {
    const { clock, registry } = setup();
    registry.handle(hb());
    registry.handle(hb({ hostname: 'celery@b' }));
    registry.recordInspection('celery@a', { queues: ['q', 'r'] });
    registry.recordInspection('celery@b', { queues: ['q'] });
    expect(registry.consumersOf('q').map((w) => w.hostname)).toEqual(['celery@a', 'celery@b']);
    expect(registry.consumersOf('r').map((w) => w.hostname)).toEqual(['celery@a']);
    expect(registry.consumersOf('nobody')).toEqual([]);
    clock.advance(3000);
    registry.handle(hb({ hostname: 'celery@b' }));
    clock.advance(1000); // a's window (2 × 2 s) is over, b heartbeated 1 s ago
    expect(registry.consumersOf('q').map((w) => w.hostname)).toEqual(['celery@b']);
  });

  it('withoutTaskEvents: heartbeats report processed tasks, but no task event of the worker came', () => {
    const { registry } = setup();
    registry.handle(hb({ processed: 5 }));
    registry.handle(hb({ hostname: 'celery@e', processed: 5 }));
    expect(registry.withoutTaskEvents()).toEqual([]); // nothing processed since we first saw them
    registry.handle(hb({ processed: 7 }));
    registry.handle(hb({ hostname: 'celery@e', processed: 7 }));
    registry.noteTaskEvent('celery@e');
    expect(registry.withoutTaskEvents().map((w) => w.hostname)).toEqual(['celery@a']);
    registry.noteTaskEvent('celery@a'); // enable_events took effect
    expect(registry.withoutTaskEvents()).toEqual([]);
  });
});
