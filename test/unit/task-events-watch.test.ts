import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import type { WorkerEvent } from '../../src/celery/events.js';
import { TaskEventsWatch } from '../../src/exporter/task-events-watch.js';
import { WorkerRegistry } from '../../src/state/workers.js';
import type { BrokerTransport, ControlRequest } from '../../src/transport/transport.js';
import { capturingLogger } from '../support/fake-github.js';

function setup(enableEvents = true) {
  const clock = new ManualClock();
  const workers = new WorkerRegistry(clock, { purgeAfterSeconds: 600 });
  const sent: ControlRequest[] = [];
  const transport = {
    isConnected: () => true,
    broadcast: async (request: ControlRequest) => {
      sent.push(request);
      return [];
    },
  } as unknown as BrokerTransport;
  const log = capturingLogger();
  const watch = new TaskEventsWatch(transport, workers, clock, log.logger, { enableEvents, intervalSeconds: 60 });
  const heartbeat = (hostname: string, processed = 0, pid = 1) =>
    workers.handle({ type: 'worker-heartbeat', hostname, timestamp: clock.nowMs() / 1000, freq: 30, processed, pid } as WorkerEvent);
  return { clock, workers, sent, watch, heartbeat, log };
}

describe('enable_events for workers started without -E', () => {
  it('is sent to a new worker at the next tick, by name, and to every live worker each interval', () => {
    const { clock, sent, watch, heartbeat } = setup();
    heartbeat('a@h');
    watch.tick();
    expect(sent).toEqual([{ method: 'enable_events', arguments: {}, destination: ['a@h'] }]);
    clock.advance(1000);
    heartbeat('b@h');
    watch.tick();
    expect(sent.map((r) => r.destination)).toEqual([['a@h'], ['b@h']]);
    clock.advance(59_000);
    heartbeat('a@h');
    heartbeat('b@h');
    watch.tick();
    expect(sent.map((r) => r.destination)).toEqual([['a@h'], ['b@h'], ['a@h']]);
  });

  it('is sent again at once to a worker restarted under the same name (a new pid)', () => {
    const { clock, sent, watch, heartbeat } = setup();
    heartbeat('a@h', 0, 100);
    watch.tick();
    clock.advance(1000);
    heartbeat('a@h', 0, 100);
    watch.tick();
    expect(sent).toHaveLength(1);
    heartbeat('a@h', 0, 200);
    watch.tick();
    expect(sent.map((r) => r.destination)).toEqual([['a@h'], ['a@h']]);
  });

  it('is never sent when switched off, and never without a live worker to name', () => {
    const off = setup(false);
    off.heartbeat('a@h');
    off.watch.tick();
    expect(off.sent).toEqual([]);
    const none = setup();
    none.watch.tick();
    expect(none.sent).toEqual([]);
  });

  it('counts a worker that processes tasks without task events, and logs it once', () => {
    const { watch, heartbeat, workers, log } = setup(false);
    heartbeat('a@h', 10);
    heartbeat('a@h', 12);
    watch.tick();
    watch.tick();
    expect(watch.silentWorkers).toBe(1);
    const warnings = log.lines().filter((l) => l.hostname === 'a@h');
    expect(warnings).toHaveLength(1);
    expect(String(warnings[0]!.msg)).toContain('-E');
    workers.noteTaskEvent('a@h');
    watch.tick();
    expect(watch.silentWorkers).toBe(0);
  });
});
