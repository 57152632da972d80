import { afterEach, describe, expect, it, vi } from 'vitest';
import { DeadlineError, withDeadline } from '../../src/transport/async.js';
import { LamportClock, pidboxRequestBody, replyLimit, requestExpires } from '../../src/transport/pidbox.js';
import { backoffDelay, ReconnectScheduler } from '../../src/transport/reconnect.js';
import { decodeEnvelope, encodePidboxRequest } from '../../src/transport/redis/keys.js';
import { BrokerTlsError, explainTlsError, loadTlsOptions } from '../../src/transport/tls.js';
import type { ControlRequest, TransportObserver } from '../../src/transport/transport.js';

describe('pidbox Lamport clock (kombu/clocks.py LamportClock)', () => {
  it('forward() counts up by one per request sent', () => {
    const clock = new LamportClock();
    expect([clock.forward(), clock.forward(), clock.forward()]).toEqual([1, 2, 3]);
  });

  it('adjust(other) sets max(value, other) + 1, as kombu does on every reply received', () => {
    const clock = new LamportClock();
    clock.forward(); // 1
    expect(clock.adjust(10)).toBe(11); // a worker ahead of us
    expect(clock.adjust(3)).toBe(12); // a worker behind us still advances the clock
    expect(clock.forward()).toBe(13);
  });

  it('ignores a clock that is not a finite number', () => {
    const clock = new LamportClock();
    expect(clock.adjust(Number.NaN)).toBe(0);
    expect(clock.adjust(Number.POSITIVE_INFINITY)).toBe(0);
  });
});

describe('pidbox request body and reply limit', () => {
  const request: ControlRequest = { method: 'ping', arguments: {}, destination: ['celery@a', 'celery@b'] };

  it("keeps kombu's key order, with ticket and reply_to only when replies are wanted", () => {
    expect(Object.keys(pidboxRequestBody(request))).toEqual(['method', 'arguments', 'destination', 'pattern', 'matcher']);
    const body = pidboxRequestBody(request, { ticket: 't1', oid: 'o1' });
    expect(Object.keys(body)).toEqual(['method', 'arguments', 'destination', 'pattern', 'matcher', 'ticket', 'reply_to']);
    expect(body['reply_to']).toEqual({ exchange: 'reply.celery.pidbox', routing_key: 'o1' });
    expect(body['pattern']).toBeNull();
  });

  it('is the body the Redis envelope carries too', () => {
    const payload = encodePidboxRequest({
      ...request,
      pattern: null,
      matcher: null,
      reply: { ticket: 't1', oid: 'o1' },
      clock: 4,
      expires: 0,
      deliveryTag: 'd',
    });
    const envelope = decodeEnvelope(payload);
    if (typeof envelope === 'string') throw new Error(envelope);
    expect(JSON.parse(envelope.body.toString('utf8'))).toEqual(pidboxRequestBody(request, { ticket: 't1', oid: 'o1' }));
  });

  it('stops at a positive limit, else at one reply per named destination, else never', () => {
    expect(replyLimit(request, { reply: true, timeoutMs: 1000, limit: 1 })).toBe(1);
    expect(replyLimit(request, { reply: true, timeoutMs: 1000 })).toBe(2);
    expect(replyLimit(request, { reply: true, timeoutMs: 1000, limit: 0 })).toBe(2);
    expect(replyLimit({ ...request, destination: null }, { reply: true, timeoutMs: 1000 })).toBeUndefined();
    expect(replyLimit({ ...request, destination: [] }, { reply: true, timeoutMs: 1000 })).toBeUndefined();
  });

  it('expires after the reply timeout, in epoch seconds; 0 without a timeout', () => {
    expect(requestExpires({ reply: true, timeoutMs: 1500 }, 1_000_000)).toBe(1001.5);
    expect(requestExpires({ reply: true, timeoutMs: 0 }, 1_000_000)).toBe(0);
  });
});

describe('reconnect scheduler', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  function observer() {
    const calls: Array<[number, number]> = [];
    const o: TransportObserver = { connected: () => undefined, disconnected: () => undefined, reconnecting: (a, d) => calls.push([a, d]) };
    return { o, calls };
  }

  it('schedules one attempt at a time, counts attempts, and restarts the count after a success', () => {
    vi.useFakeTimers();
    const { o, calls } = observer();
    let attempts = 0;
    const scheduler = new ReconnectScheduler({ initialMs: 100, maxMs: 1000 }, o, () => (attempts += 1));
    scheduler.schedule();
    scheduler.schedule(); // already scheduled: no second timer
    expect(calls.map(([a]) => a)).toEqual([1]);
    vi.runOnlyPendingTimers();
    expect(attempts).toBe(1);
    scheduler.schedule();
    expect(calls.map(([a]) => a)).toEqual([1, 2]);
    vi.runOnlyPendingTimers();
    scheduler.connected();
    scheduler.schedule();
    expect(calls.map(([a]) => a)).toEqual([1, 2, 1]);
    for (const [attempt, delay] of calls) expect(delay).toBeLessThanOrEqual(Math.min(1000, 100 * 2 ** (attempt - 1)));
  });

  it('runs nothing once stopped', () => {
    vi.useFakeTimers();
    const { o, calls } = observer();
    let attempts = 0;
    const scheduler = new ReconnectScheduler({ initialMs: 100, maxMs: 1000 }, o, () => (attempts += 1));
    scheduler.schedule();
    scheduler.stop();
    scheduler.schedule();
    vi.runAllTimers();
    expect(attempts).toBe(0);
    expect(calls).toHaveLength(1);
  });

  it('draws the delay from the upper half of a doubling, capped ceiling', () => {
    expect(backoffDelay(1, 500, 15_000, () => 0)).toBe(250);
    expect(backoffDelay(1, 500, 15_000, () => 1)).toBe(500);
    expect(backoffDelay(4, 500, 15_000, () => 1)).toBe(4000);
    expect(backoffDelay(40, 500, 15_000, () => 0)).toBe(7500);
    expect(backoffDelay(Number.NaN, 500, 15_000, () => 1)).toBe(500);
  });
});

describe('withDeadline', () => {
  it('rejects with a DeadlineError naming the operation, and hands a late value to onLate', async () => {
    let resolve!: (v: string) => void;
    const slow = new Promise<string>((r) => (resolve = r));
    const late: string[] = [];
    const outcome = withDeadline(slow, 1, 'reading queue lengths', (v) => late.push(v));
    await expect(outcome).rejects.toThrow(DeadlineError);
    await expect(outcome).rejects.toThrow(/^reading queue lengths timed out after 1 ms$/);
    resolve('socket');
    await slow;
    await Promise.resolve();
    expect(late).toEqual(['socket']);
  });

  it('passes a result that comes in time straight through', async () => {
    await expect(withDeadline(Promise.resolve(7), 1000)).resolves.toBe(7);
  });
});

describe('broker TLS files', () => {
  it('reads the files the config names and passes verification and server name through', () => {
    const files: Record<string, string> = { '/ca.pem': 'CA', '/c.pem': 'CERT', '/k.pem': 'KEY' };
    const options = loadTlsOptions(
      { ca_file: '/ca.pem', cert_file: '/c.pem', key_file: '/k.pem', server_name: 'broker.internal', verify: true },
      (p) => Buffer.from(files[p]!),
    );
    expect(options.ca?.toString()).toBe('CA');
    expect(options.cert?.toString()).toBe('CERT');
    expect(options.key?.toString()).toBe('KEY');
    expect(options).toMatchObject({ servername: 'broker.internal', rejectUnauthorized: true });
    expect(loadTlsOptions({ verify: false })).toEqual({ rejectUnauthorized: false });
  });

  it('names the key and the path of a file it cannot read, and nothing of its content', () => {
    expect(() => loadTlsOptions({ key_file: '/nonexistent/client.key', verify: true })).toThrow(
      new BrokerTlsError('broker_tls.key_file: cannot read /nonexistent/client.key (ENOENT)'),
    );
  });

  it('turns a refused broker certificate into advice on what to check', () => {
    const refused = Object.assign(new Error('self-signed certificate in certificate chain'), { code: 'SELF_SIGNED_CERT_IN_CHAIN' });
    expect(explainTlsError(refused).message).toMatch(
      /^TLS verification of the broker failed \(SELF_SIGNED_CERT_IN_CHAIN: .*check broker_tls\.ca_file$/,
    );
    const wrongName = Object.assign(new Error("Hostname/IP does not match certificate's altnames"), {
      code: 'ERR_TLS_CERT_ALTNAME_INVALID',
    });
    expect(explainTlsError(wrongName).message).toMatch(/broker_tls\.server_name/);
    const other = new Error('ECONNREFUSED');
    expect(explainTlsError(other)).toBe(other);
  });
});
