import { describe, expect, it } from 'vitest';
import { BUSY_WINDOW_MS, DRAIN_SLICE_MS, ReadAhead, TURN_BUDGET_MS } from '../../src/transport/redis/read-ahead.js';

/**
 * The read-ahead with a hand-driven clock and event loop: `now` only moves when a test moves it
 * (processing a message "takes" `costMs`), and deferred tasks run only when `nextTurn()` says the
 * loop came round, so the trigger and the bound are exact.
 */
function rig(options: { costMs: number; maxBacklogBytes?: number; slowMs?: number }) {
  let now = 0;
  let deferred: Array<() => void> = [];
  const processed: string[] = [];
  let full = 0;
  const readAhead = new ReadAhead({
    maxBacklogBytes: options.maxBacklogBytes ?? 1 << 20,
    now: () => now,
    defer: (task) => deferred.push(task),
    process: (_channel, message) => {
      processed.push(message.toString());
      // A message named `slow` takes `slowMs`: one long read that trips the turn budget.
      now += message.toString() === 'slow' ? (options.slowMs ?? options.costMs) : options.costMs;
    },
    onBacklogFull: () => (full += 1),
  });
  const push = (text: string) => readAhead.push(Buffer.from('ch'), Buffer.from(text));
  /** One pass of the loop's check phase: runs what was deferred before it. */
  const nextTurn = (idleMs = 0) => {
    now += idleMs;
    const tasks = deferred;
    deferred = [];
    for (const task of tasks) task();
  };
  const drainAll = () => {
    for (let i = 0; i < 10_000 && deferred.length > 0; i++) nextTurn();
  };
  return { readAhead, push, nextTurn, drainAll, processed, full: () => full, pendingTasks: () => deferred.length };
}

describe('redis read-ahead trigger', () => {
  it('processes inline, in order, while processing is quick', () => {
    const r = rig({ costMs: 1 });
    for (let i = 0; i < 20; i++) {
      r.push(`m${i}`);
      r.nextTurn(10);
    }
    expect(r.processed).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`));
    expect(r.readAhead.queuing).toBe(false);
    expect(r.readAhead.backlogBytes).toBe(0);
  });

  it(`switches to queuing once one loop turn spent more than ${TURN_BUDGET_MS} ms inline`, () => {
    const r = rig({ costMs: 20 });
    r.push('a');
    r.push('b'); // 40 ms in this turn: still inline
    expect(r.readAhead.queuing).toBe(false);
    r.push('c'); // 60 ms: over the budget
    expect(r.readAhead.queuing).toBe(true);
    r.push('d'); // queued, not processed while the socket is being read
    expect(r.processed).toEqual(['a', 'b', 'c']);
    expect(r.readAhead.backlogBytes).toBe(1);
    r.drainAll();
    expect(r.processed).toEqual(['a', 'b', 'c', 'd']);
    expect(r.readAhead.queuing).toBe(false); // caught up: back to inline
    r.push('e');
    expect(r.processed.at(-1)).toBe('e');
  });

  it('does not carry one turn’s time into the next', () => {
    const r = rig({ costMs: 20 });
    for (let i = 0; i < 10; i++) {
      r.push(`x${i}`);
      r.push(`y${i}`); // 40 ms per turn, then 100 ms idle: busy 40 % of the window
      r.nextTurn(100);
    }
    expect(r.readAhead.queuing).toBe(false);
    expect(r.processed).toHaveLength(20);
  });

  it(`switches to queuing when inline work takes over 80 % of a ${BUSY_WINDOW_MS} ms window, turn after turn`, () => {
    const r = rig({ costMs: 10 });
    // One message per turn, 1 ms apart: no single turn is long, but the loop is 10/11 busy.
    for (let i = 0; i < 8; i++) {
      r.push(`m${i}`);
      r.nextTurn(1);
    }
    expect(r.readAhead.queuing).toBe(false); // 80 ms busy: not over 80 %
    r.push('m8');
    expect(r.readAhead.queuing).toBe(true); // 90 ms busy within the window
  });

  it('starts a fresh window once the last one is over, so a steady moderate rate stays inline', () => {
    const r = rig({ costMs: 10 });
    for (let i = 0; i < 100; i++) {
      r.push(`m${i}`);
      r.nextTurn(30); // 25 % busy
    }
    expect(r.readAhead.queuing).toBe(false);
  });
});

describe('redis read-ahead bound', () => {
  it('drops (and reports) what would take the queue past max_backlog_bytes, keeps the rest in order', () => {
    const r = rig({ costMs: 1, slowMs: 60, maxBacklogBytes: 250 });
    r.push('slow'); // one 60 ms message: queuing from here on
    const hundred = 'x'.repeat(100);
    r.push(`${hundred}`);
    r.push(`${hundred}`);
    expect(r.readAhead.backlogBytes).toBe(200);
    r.push(`${hundred}`); // 300 > 250
    expect(r.full()).toBe(1);
    expect(r.readAhead.backlogBytes).toBe(200);
    r.push('y'.repeat(50)); // exactly 250 fits
    expect(r.full()).toBe(1);
    expect(r.readAhead.backlogBytes).toBe(250);
    r.drainAll();
    expect(r.processed).toEqual(['slow', hundred, hundred, 'y'.repeat(50)]);
    expect(r.readAhead.backlogBytes).toBe(0);
  });

  it(`processes a long queue in slices of about ${DRAIN_SLICE_MS} ms, yielding to the loop in between`, () => {
    const r = rig({ costMs: 0.1, slowMs: 60 });
    r.push('slow');
    expect(r.readAhead.queuing).toBe(true);
    for (let i = 0; i < 200; i++) r.push(`b${i}`);
    expect(r.processed).toEqual(['slow']);
    r.nextTurn(); // the turn-end task and the first slice
    // The clock is read every 64 messages: 64 × 0.1 ms = 6.4 ms > 5 ms ends the first slice.
    expect(r.processed).toHaveLength(1 + 64);
    expect(r.pendingTasks()).toBe(1); // the next slice, after the loop has read its sockets
    r.drainAll();
    expect(r.processed.slice(1)).toEqual(Array.from({ length: 200 }, (_, i) => `b${i}`));
    expect(r.readAhead.queuing).toBe(false);
    expect(r.readAhead.backlogBytes).toBe(0);
  });

  it('clear() forgets the queue; a pending slice then finds nothing and inline processing resumes', () => {
    const r = rig({ costMs: 1, slowMs: 60 });
    r.push('slow');
    r.push('queued');
    r.readAhead.clear();
    expect(r.readAhead.backlogBytes).toBe(0);
    r.drainAll();
    expect(r.processed).toEqual(['slow']);
    expect(r.readAhead.queuing).toBe(false);
  });
});
