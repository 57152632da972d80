import { describe, expect, it } from 'vitest';
import { processesNeeded, QueueFlow, timeToDrain } from '../../src/state/queue-flow.js';

describe('QueueFlow: per-queue rates over a sliding window', () => {
  const setup = (windowSeconds = 10, maxQueues = 10) => {
    let now = 1_000_000;
    const flow = new QueueFlow(() => now, windowSeconds, maxQueues);
    return { flow, advance: (ms: number) => (now += ms), now: () => now };
  };

  it('counts over the time observed until the window is full, then over the window', () => {
    const { flow, advance } = setup(10);
    for (let i = 0; i < 4; i++) flow.completed('q', 0.5);
    advance(2000);
    // 4 completions over 2 s observed.
    expect(flow.rates('q')).toMatchObject({ completionRate: 2, meanRuntime: 0.5 });
    advance(18_000);
    for (let i = 0; i < 10; i++) flow.completed('q', 1.5);
    // The first 4 are out of the window; 10 over the 10 s window.
    expect(flow.rates('q')).toMatchObject({ completionRate: 1, meanRuntime: 1.5 });
    advance(10_000);
    expect(flow.rates('q')).toMatchObject({ completionRate: 0, meanRuntime: undefined });
  });

  it('arrivals come from task-sent when any is seen, else from task-received', () => {
    const { flow, advance } = setup(10);
    flow.received('q');
    flow.received('q');
    advance(1000);
    expect(flow.rates('q')).toMatchObject({ arrivalRate: 2, arrivals: 'task-received' });
    flow.sent('q');
    expect(flow.rates('q')).toMatchObject({ arrivalRate: 1, arrivals: 'task-sent' });
  });

  it("Little's law: arrival rate × mean runtime; drain: length ÷ completion rate", () => {
    const { flow, advance } = setup(10);
    advance(0);
    for (let i = 0; i < 30; i++) flow.sent('q');
    for (let i = 0; i < 20; i++) flow.completed('q', i < 10 ? 1 : 3); // mean 2 s
    advance(10_000 - 1);
    const r = flow.rates('q')!;
    expect(r.arrivalRate).toBeCloseTo(3, 2);
    expect(r.completionRate).toBeCloseTo(2, 2);
    expect(processesNeeded(r)).toBeCloseTo(6, 1);
    expect(timeToDrain(50, r)).toBeCloseTo(25, 1);
    expect(timeToDrain(0, r)).toBe(0);
  });

  it('a backlog nothing completes from never drains; unknown queues and runtimes give no figure', () => {
    const { flow } = setup();
    flow.sent('q');
    expect(timeToDrain(5, flow.rates('q'))).toBe(Infinity);
    expect(timeToDrain(5, flow.rates('never-seen'))).toBe(Infinity);
    expect(processesNeeded(flow.rates('q'))).toBeUndefined();
    expect(processesNeeded(undefined)).toBeUndefined();
  });

  it('tracks at most maxQueues queues; runtimes that are not finite non-negative numbers are not averaged', () => {
    const { flow } = setup(10, 2);
    flow.completed('a', -1);
    flow.completed('a', Number.NaN);
    flow.completed('b', 2);
    flow.completed('c', 1);
    expect(flow.rates('a')).toMatchObject({ meanRuntime: undefined });
    expect(flow.rates('b')).toMatchObject({ meanRuntime: 2 });
    expect(flow.rates('c')).toBeUndefined();
  });
});
