import { describe, expect, it } from 'vitest';
import { PasswordGate, type GateEntry } from '../../src/auth/password-gate.js';
import { ManualClock } from '../../src/clock.js';

type Admitted = Extract<GateEntry, { admitted: true }>;
const admitted = (e: GateEntry): Admitted => {
  if (!e.admitted) throw new Error(`refused: ${e.why}`);
  return e;
};
/** Whether a promise has settled, without waiting for it. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  await new Promise((r) => setImmediate(r));
  return done;
}

const make = (maxFailures = 3) => {
  const clock = new ManualClock();
  return { clock, gate: new PasswordGate(clock, { maxFailures, windowSeconds: 60 }) };
};

async function fail(gate: PasswordGate, ip: string, user = 'alice'): Promise<void> {
  admitted(await gate.enter(ip, user)).release('failure');
}

describe('PasswordGate', () => {
  it('counts an attempt when it starts: a client with failures + attempts in flight at the limit is refused before hashing', async () => {
    const { gate } = make(3);
    await fail(gate, 'a');
    await fail(gate, 'a');
    const third = admitted(await gate.enter('a', 'x'));
    expect(await gate.enter('a', 'y')).toMatchObject({ admitted: false, why: 'client' });
    third.release('failure');
    expect(await gate.enter('a', 'z')).toMatchObject({ admitted: false, why: 'client', retryAfterSeconds: 60 });
  });

  it('a client with failures has at most two attempts in flight, the third refused at once; a clean client is not limited that way', async () => {
    const { gate } = make(100);
    await fail(gate, 'a');
    const one = admitted(await gate.enter('a', 'u'));
    const two = gate.enter('a', 'u');
    expect(await gate.enter('a', 'u')).toMatchObject({ admitted: false, why: 'client', retryAfterSeconds: 1 });
    one.release('failure');
    admitted(await two).release('failure');
    const clean = [gate.enter('c', 'u'), gate.enter('c', 'u'), gate.enter('c', 'u')];
    const first = await Promise.all(clean.slice(0, 2));
    for (const e of first) admitted(e).release('success');
    admitted(await clean[2]!).release('success');
  });

  it('clients with failures hold at most one of the two slots, so a clean client always finds one', async () => {
    const { gate } = make(100);
    for (const ip of ['d1', 'd2']) await fail(gate, ip);
    const dirty = admitted(await gate.enter('d1', 'u'));
    const waitingDirty = gate.enter('d2', 'u');
    expect(await settled(waitingDirty)).toBe(false);
    const clean = admitted(await gate.enter('c1', 'u'));
    // Both slots are busy now: a second clean client waits, and goes before the waiting dirty one.
    const waitingClean = gate.enter('c2', 'u');
    expect(await settled(waitingClean)).toBe(false);
    dirty.release('failure');
    expect(await settled(waitingClean)).toBe(true);
    expect(await settled(waitingDirty)).toBe(false);
    clean.release('success');
    expect(await settled(waitingDirty)).toBe(true);
    admitted(await waitingClean).release('success');
    admitted(await waitingDirty).release('failure');
  });

  it('a full queue of waiting dirty clients answers busy at once', async () => {
    const { gate } = make(100);
    const ips = Array.from({ length: 40 }, (_, i) => `d${i}`);
    for (const ip of ips) await fail(gate, ip);
    const running = admitted(await gate.enter('d0', 'u'));
    const waiting = ips.slice(1, 33).map((ip) => gate.enter(ip, 'u'));
    expect(await gate.enter('d33', 'u')).toMatchObject({ admitted: false, why: 'busy' });
    running.release('failure');
    for (const w of waiting) admitted(await w).release('failure');
  });

  it("a username failed from many clients backs off only for clients that failed themselves; a clean client's attempt goes through", async () => {
    const { gate } = make(3);
    for (const ip of ['a', 'b', 'c', 'd']) await fail(gate, ip, 'alice');
    expect(await gate.enter('a', 'alice')).toMatchObject({ admitted: false, why: 'username' });
    admitted(await gate.enter('clean', 'alice')).release('success');
    // The real user's success clears the name's backoff.
    admitted(await gate.enter('a', 'alice')).release('error');
  });

  it('the username backoff grows with each failure and is capped', async () => {
    const { clock, gate } = make(2);
    const waits: number[] = [];
    for (let i = 0; i < 10; i++) {
      await fail(gate, `ip${i}`, 'carol');
      const e = await gate.enter(`ip${i}`, 'carol');
      waits.push(e.admitted ? 0 : e.retryAfterSeconds);
      if (e.admitted) e.release('error');
      clock.advance(1);
    }
    expect(waits.slice(0, 1)).toEqual([0]);
    expect(waits[2]! > waits[1]!).toBe(true);
    expect(Math.max(...waits)).toBeLessThanOrEqual(60);
  });

  it('waiting clients are served in turn: one attempt from a real user goes before the rest of a burst from one client', async () => {
    const { gate } = make(100);
    const running = [admitted(await gate.enter('burst', 'u')), admitted(await gate.enter('burst', 'u'))];
    const burst = Array.from({ length: 8 }, () => gate.enter('burst', 'u'));
    const real = gate.enter('real', 'alice');
    // Two slots free up: the burst's turn, then the real user's (not after all eight).
    running[0]!.release('success');
    running[1]!.release('success');
    expect(await settled(real)).toBe(true);
    expect((await Promise.all(burst.map(settled))).filter(Boolean)).toHaveLength(1);
    admitted(await real).release('success');
    for (const b of burst) admitted(await b).release('success');
  });
});
