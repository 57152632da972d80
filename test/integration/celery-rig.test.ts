import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { celeryControl, inspectStats, sendTasks, type CeleryTarget } from '../support/celery/client.js';
import { startWorker, stopAllWorkers, uniqueNodename } from '../support/celery/worker.js';
import { createVhost, redisIsolation, uniqueId } from '../support/isolation.js';

// Proves the real-Celery rig other suites build on: real workers start, run real tasks and answer
// real control commands on both brokers, and never outlive a kill.

interface Isolated {
  target: CeleryTarget;
  cleanup: () => Promise<void>;
}

const brokers: Array<{ broker: string; isolate: () => Promise<Isolated> }> = [
  {
    broker: 'RabbitMQ',
    isolate: async () => {
      const vhost = await createVhost(uniqueId('celery-rig'));
      return { target: { brokerUrl: vhost.url }, cleanup: vhost.remove };
    },
  },
  {
    broker: 'Redis',
    isolate: async () => {
      const { url, keyprefix } = redisIsolation('celery-rig');
      return { target: { brokerUrl: url, transportOptions: { global_keyprefix: keyprefix } }, cleanup: () => deleteKeys(url, keyprefix) };
    },
  },
];

describe.each(brokers)('celery rig on $broker', ({ isolate }) => {
  let isolated: Isolated;
  const target = (): CeleryTarget => isolated.target;

  beforeAll(async () => {
    isolated = await isolate();
  });

  afterAll(async () => {
    await stopAllWorkers();
    await isolated?.cleanup();
  });

  it('a prefork worker with -E runs tasks.add, and kill -9 takes its pool down with it', async () => {
    const worker = await startWorker({ ...target(), nodename: uniqueNodename('prefork'), pool: 'prefork', concurrency: 2 });

    const [id] = await sendTasks(target(), [{ name: 'tasks.add', args: [2, 3] }]);
    await worker.waitForLog(`Task tasks.add[${id}] succeeded`);
    const stats = await pollUntil(
      () => inspectStats(target(), [worker.nodename]),
      (replies) => replies[worker.nodename]?.total['tasks.add'] === 1,
    );
    const pool = stats[worker.nodename]?.pool.processes ?? [];
    expect(pool).toHaveLength(2);

    worker.kill('SIGKILL');
    await expect(worker.exited).resolves.toBeNull();
    await pollUntil(
      async () => pool.filter(isRunning),
      (left) => left.length === 0,
    );
    expect(isRunning(worker.pid)).toBe(false);
  });

  it('a solo worker answers ping from a real client and stops warm on SIGTERM', async () => {
    const worker = await startWorker({ ...target(), nodename: uniqueNodename('solo'), pool: 'solo' });

    await expect(celeryControl(target(), 'ping', {}, [worker.nodename])).resolves.toEqual([{ [worker.nodename]: { ok: 'pong' } }]);

    await worker.stop();
    await expect(worker.exited).resolves.toBe(0);
    expect(worker.logs()).toContain('Warm shutdown');
  });

  it('refuses a control command that names no destination', async () => {
    await expect(celeryControl(target(), 'ping', {}, [])).rejects.toThrow(/destination/);
  });
});

/** Alive and not a zombie: killed pool children may wait a moment for their reaper. */
function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

async function pollUntil<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms; last value: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function deleteKeys(url: string, keyprefix: string): Promise<void> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${keyprefix}*`, 'COUNT', 500);
      if (keys.length) await redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}
