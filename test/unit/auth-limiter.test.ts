import type { SessionData } from 'express-session';
import { describe, expect, it } from 'vitest';
import { FailureLimiter } from '../../src/auth/login-limiter.js';
import { BoundedMemoryStore } from '../../src/auth/session-store.js';
import { ManualClock } from '../../src/clock.js';

describe('FailureLimiter', () => {
  const make = (maxKeys?: number) => {
    const clock = new ManualClock();
    return { clock, limiter: new FailureLimiter(clock, { maxFailures: 3, windowSeconds: 60, ...(maxKeys ? { maxKeys } : {}) }) };
  };

  it('allows up to maxFailures failures, then refuses until the oldest leaves the window', () => {
    const { clock, limiter } = make();
    limiter.recordFailure(['ip:a']);
    clock.advance(10_000);
    limiter.recordFailure(['ip:a']);
    expect(limiter.retryAfterSeconds(['ip:a'])).toBe(0);
    clock.advance(10_000);
    limiter.recordFailure(['ip:a']);
    expect(limiter.retryAfterSeconds(['ip:a'])).toBe(40);
    clock.advance(40_000);
    expect(limiter.retryAfterSeconds(['ip:a'])).toBe(0);
  });

  it('answers for the most constrained of several keys', () => {
    const { clock, limiter } = make();
    for (let i = 0; i < 3; i++) limiter.recordFailure(['user:alice']);
    clock.advance(30_000);
    for (let i = 0; i < 3; i++) limiter.recordFailure(['ip:b']);
    expect(limiter.retryAfterSeconds(['ip:b', 'user:alice'])).toBe(60);
    expect(limiter.retryAfterSeconds(['ip:c', 'user:alice'])).toBe(30);
    expect(limiter.retryAfterSeconds(['ip:c', 'user:bob'])).toBe(0);
  });

  it('reset clears one key only', () => {
    const { limiter } = make();
    for (let i = 0; i < 3; i++) limiter.recordFailure(['ip:a', 'user:alice']);
    limiter.reset('user:alice');
    expect(limiter.retryAfterSeconds(['user:alice'])).toBe(0);
    expect(limiter.retryAfterSeconds(['ip:a'])).toBe(60);
  });

  it('keeps at most maxKeys keys, forgetting the least recently failed', () => {
    const { limiter } = make(100);
    for (let i = 0; i < 1000; i++) limiter.recordFailure([`ip:${i}`]);
    expect(limiter.size).toBe(100);
  });

  it('forgets keys whose failures all aged out', () => {
    const { clock, limiter } = make();
    limiter.recordFailure(['ip:a']);
    clock.advance(61_000);
    expect(limiter.retryAfterSeconds(['ip:a'])).toBe(0);
    expect(limiter.size).toBe(0);
  });
});

describe('BoundedMemoryStore', () => {
  const data = (maxAge = 60_000) => ({ cookie: { originalMaxAge: maxAge }, csrfToken: 't' }) as unknown as SessionData;
  const get = (store: BoundedMemoryStore, sid: string) =>
    new Promise<SessionData | null | undefined>((resolve) => store.get(sid, (_err, s) => resolve(s)));

  it('returns a copy of what was stored, until it expires', async () => {
    const clock = new ManualClock();
    const store = new BoundedMemoryStore(clock, { maxSessions: 10, maxAgeMs: 1000 });
    store.set('a', data());
    expect(await get(store, 'a')).toMatchObject({ csrfToken: 't' });
    clock.advance(60_000);
    expect(await get(store, 'a')).toBeNull();
    expect(store.size).toBe(0);
  });

  it('drops the least recently written sessions beyond maxSessions', async () => {
    const store = new BoundedMemoryStore(new ManualClock(), { maxSessions: 10, maxAgeMs: 1000 });
    for (let i = 0; i < 25; i++) store.set(`s${i}`, data());
    expect(store.size).toBe(10);
    expect(await get(store, 's0')).toBeNull();
    expect(await get(store, 's24')).not.toBeNull();
  });

  it('destroy removes a session', async () => {
    const store = new BoundedMemoryStore(new ManualClock(), { maxSessions: 10, maxAgeMs: 1000 });
    store.set('a', data());
    store.destroy('a');
    expect(await get(store, 'a')).toBeNull();
  });
});
