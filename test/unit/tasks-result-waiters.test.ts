import { describe, expect, it } from 'vitest';
import { BackendUnavailableError, type TaskMeta } from '../../src/tasks/result-backend.js';
import { ResultWaiters, TooManyWaitersError } from '../../src/tasks/result-waiters.js';

/** A result backend in memory that records each read. */
function fakeBackend() {
  const metas = new Map<string, TaskMeta | BackendUnavailableError>();
  const reads: string[][] = [];
  let down = false;
  return {
    metas,
    reads,
    setDown: (d: boolean) => (down = d),
    getMany: (ids: readonly string[]) => {
      reads.push([...ids]);
      if (down) return Promise.reject(new BackendUnavailableError('the result backend did not answer'));
      return Promise.resolve(ids.map((id) => metas.get(id) ?? null));
    },
  };
}

const success = (id: string): TaskMeta => ({ status: 'SUCCESS', result: id, traceback: null });

describe('result waiters: one shared read per period, bounded', () => {
  it('every request waiting for the same ids shares one read of all of them', async () => {
    const backend = fakeBackend();
    const waiters = new ResultWaiters(backend, { maxWaiters: 100, pollMs: 5 });
    const waits = [
      ...Array.from({ length: 30 }, () => waiters.wait('a', 60_000)),
      ...Array.from({ length: 20 }, () => waiters.wait('b', 60_000)),
    ];
    expect(waiters.size).toBe(50);
    while (backend.reads.length < 3) await new Promise((r) => setTimeout(r, 5));
    for (const read of backend.reads) expect([...read].sort()).toEqual(['a', 'b']);
    backend.metas.set('a', success('a'));
    backend.metas.set('b', success('b'));
    const answers = await Promise.all(waits);
    expect(answers.map((m) => m?.result)).toEqual([...Array<string>(30).fill('a'), ...Array<string>(20).fill('b')]);
    expect(waiters.size).toBe(0);
  });

  it('refuses waits beyond the bound, and a wait whose client went away frees its place', async () => {
    const backend = fakeBackend();
    const waiters = new ResultWaiters(backend, { maxWaiters: 2, pollMs: 5 });
    const gone = new AbortController();
    const first = waiters.wait('x', 60_000, gone.signal);
    const second = waiters.wait('y', 60_000);
    expect(() => waiters.wait('z', 60_000)).toThrow(TooManyWaitersError);
    expect(() => waiters.ensureRoom()).toThrow('2 result waits are in progress (tasks.max_result_waiters): retry later');
    gone.abort();
    expect(await first).toBeNull();
    const third = waiters.wait('z', 60_000);
    backend.metas.set('y', success('y'));
    backend.metas.set('z', success('z'));
    expect((await second)?.result).toBe('y');
    expect((await third)?.result).toBe('z');
  });

  it('answers the latest state at the timeout, and ends every wait when the backend fails', async () => {
    const backend = fakeBackend();
    const waiters = new ResultWaiters(backend, { maxWaiters: 10, pollMs: 5 });
    backend.metas.set('started', { status: 'STARTED', result: null, traceback: null });
    expect((await waiters.wait('started', 20))?.status).toBe('STARTED');
    expect(await waiters.wait('unknown', 20)).toBeNull();
    backend.setDown(true);
    await expect(waiters.wait('any', 60_000)).rejects.toThrow(BackendUnavailableError);
    backend.setDown(false);
    backend.metas.set('pickled', new BackendUnavailableError('not Celery JSON'));
    await expect(waiters.wait('pickled', 60_000)).rejects.toThrow('not Celery JSON');
    expect(waiters.size).toBe(0);
  });
});
