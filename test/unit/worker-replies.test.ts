import { describe, expect, it } from 'vitest';
import { parseActiveQueues, parseStats } from '../../src/celery/worker-replies.js';
import { readFixture } from '../support/fixtures.js';

interface Captured {
  configs: Record<string, Record<string, { reply: Array<Record<string, unknown>> }>>;
}
const captures = readFixture<Captured>('celery-5.2.6/control_replies_by_pool.json').configs;
/** The one worker's value in a captured reply list. */
const value = (config: string, command: string): unknown => Object.values(captures[config]![command]!.reply[0]!)[0];

describe('stats replies of real Celery 5.2.6 workers, by pool', () => {
  it.each([
    // [capture, pool processes, max-concurrency, tasks at once]
    ['prefork_amqp (-E -c 2)', 2, 2, 2],
    ['solo_redis_db1 (-E -P solo)', 1, 1, 1],
    // The threads pool lists no processes: its size is max-concurrency (it ran 2 tasks at once).
    ['threads_amqp (-E -P threads -c 2)', undefined, 2, 2],
    ['prefork_autoscale_amqp (-E --autoscale=4,1)', 1, 1, 1],
  ] as const)('%s', (config, poolProcesses, maxConcurrency, concurrency) => {
    const stats = parseStats(value(config, 'stats_before'))!;
    expect(stats.poolProcesses).toBe(poolProcesses);
    expect(stats.maxConcurrency).toBe(maxConcurrency);
    expect(stats.concurrency).toBe(concurrency);
  });

  it('counts the live children after a grow, not the configured concurrency', () => {
    expect(parseStats(value('prefork_amqp (-E -c 2)', 'stats_after_shrink'))).toMatchObject({
      poolProcesses: 3,
      maxConcurrency: 2,
      concurrency: 3,
    });
  });

  it('reads the autoscaler bounds only where there is one', () => {
    expect(parseStats(value('prefork_autoscale_amqp (-E --autoscale=4,1)', 'stats_before'))?.autoscaler).toEqual({ min: 1, max: 4 });
    expect(parseStats(value('prefork_amqp (-E -c 2)', 'stats_before'))?.autoscaler).toBeUndefined();
  });

  it.each([null, 'x', [], { pool: 'x' }, { pool: { processes: 'x', 'max-concurrency': -1 } }])('tolerates %j', (bad) => {
    const stats = parseStats(bad);
    expect(stats?.concurrency).toBeUndefined();
  });
});

describe('active_queues replies', () => {
  it('names the queues of a real worker, before and after add_consumer', () => {
    expect(parseActiveQueues(value('prefork_amqp (-E -c 2)', 'active_queues'))).toEqual(['celery']);
    expect(parseActiveQueues(value('prefork_amqp (-E -c 2)', 'active_queues_after_add'))).toEqual(['celery', 'extra_q']);
  });

  it('is undefined for anything but a list, and skips entries without a name', () => {
    expect(parseActiveQueues({ name: 'q' })).toBeUndefined();
    expect(parseActiveQueues([{ name: 'a' }, { exchange: 'x' }, null, { name: 7 }])).toEqual(['a']);
  });
});
