import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/load.js';

const load = (argv: string[] = [], env: Record<string, string> = {}) => loadConfig({ argv, env, readFile: () => '' }).config!;

describe('exporter configuration', () => {
  it("queue-wait buckets are celery-exporter's (0.05 … 1800 s), with 10 kept for CeleryQueueWaitHigh", () => {
    const b = load().metrics.queue_wait_buckets;
    expect(b).toEqual([0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800]);
    expect(load().metrics.runtime_buckets.at(-1)).toBe(10);
  });

  it('queues are retained 24 h by default; 0 keeps them for ever', () => {
    expect(load().metrics.queue_retention_seconds).toBe(86_400);
    expect(load(['--metrics-queue-retention-seconds', '0']).metrics.queue_retention_seconds).toBe(0);
  });

  it('enable_events: on, every 60 s by default, with an off switch by flag and environment', () => {
    expect(load().events).toMatchObject({ enable_events: true, enable_events_interval_seconds: 60 });
    expect(load(['--events-enable-events', 'false']).events.enable_events).toBe(false);
    expect(load([], { CELERY_AUTOPILOT_EVENTS_ENABLE_EVENTS_INTERVAL_SECONDS: '5' }).events.enable_events_interval_seconds).toBe(5);
  });

  it.each([
    ['INFO', 'info'],
    ['Debug', 'debug'],
    ['WARNING', 'warn'],
    ['critical', 'fatal'],
    ['error', 'error'],
  ])('--log-level %s is accepted in any case (as celery-exporter and Flower take it)', (given, level) => {
    expect(load(['--log-level', given]).log_level).toBe(level);
  });

  it('an unknown log level is still refused', () => {
    expect(() => load(['--log-level', 'LOUD'])).toThrow(ConfigError);
  });
});
