import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/log.js';
import { VERSION } from '../../src/metrics/self-metrics.js';
import { Service } from '../../src/service.js';
import type { BrokerTransport, TransportObserver } from '../../src/transport/transport.js';
import { metricValue, parseMetrics } from '../support/prom.js';

/** Self-telemetry read through one collect(); the broker is never contacted (nothing is started). */
function service(argv: string[] = [], subscribed?: (observer: TransportObserver) => void) {
  const { config } = loadConfig({ argv, env: {}, readFile: () => '' });
  const transport = { kind: 'amqp', isConnected: () => false, close: async () => undefined } as unknown as BrokerTransport;
  return new Service(config!, {
    logger: silentLogger(),
    transport: (observer) => {
      subscribed?.(observer);
      return transport;
    },
  });
}
const scrape = async (s: Service) => {
  let text = '';
  for await (const chunk of s.metricsChunks()) text += chunk;
  return parseMetrics(text);
};

describe('self-metrics', () => {
  it('says which path AMQP events are read by: lean, or amqplib when its internals changed', async () => {
    expect((await scrape(service())).filter((x) => x.name === 'celery_autopilot_amqp_event_delivery')).toEqual([]);
    let m = await scrape(service([], (observer) => observer.leanDelivery?.(true)));
    expect(metricValue(m, 'celery_autopilot_amqp_event_delivery', { path: 'lean' })).toBe(1);
    m = await scrape(service([], (observer) => observer.leanDelivery?.(false)));
    expect(metricValue(m, 'celery_autopilot_amqp_event_delivery', { path: 'amqplib' })).toBe(1);
    expect(m.filter((x) => x.name === 'celery_autopilot_amqp_event_delivery')).toHaveLength(1);
  });

  it('rules reloads are counted by outcome, and the last one says whether it worked', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'cap-rules-'));
    const file = path.join(dir, 'rules.yml');
    writeFileSync(file, 'rules: []\n');
    const s = service(['--remediation-rules-file', file]);
    expect(s.reloadRules()).toBe(0);
    writeFileSync(file, 'rules: [{ not: valid }]\n');
    expect(() => s.reloadRules()).toThrow();
    let m = await scrape(s);
    expect(metricValue(m, 'celery_autopilot_rules_reloads_total', { outcome: 'success' })).toBe(1);
    expect(metricValue(m, 'celery_autopilot_rules_reloads_total', { outcome: 'failure' })).toBe(1);
    expect(metricValue(m, 'celery_autopilot_rules_last_reload_successful')).toBe(0);
    writeFileSync(file, 'rules: []\n');
    s.reloadRules();
    m = await scrape(s);
    expect(metricValue(m, 'celery_autopilot_rules_last_reload_successful')).toBe(1);
  });

  it("Node process metrics carry their standard names; evictions are a counter; version is package.json's", async () => {
    const m = await scrape(service());
    const names = new Set(m.map((x) => x.name));
    expect(names.has('process_cpu_seconds_total')).toBe(true);
    expect(names.has('nodejs_heap_size_used_bytes')).toBe(true);
    expect([...names].filter((n) => n.startsWith('celery_autopilot_process_') || n.startsWith('celery_autopilot_nodejs_'))).toEqual([]);
    expect(metricValue(m, 'celery_autopilot_tracked_task_evictions_total')).toBe(0);
    expect(names.has('celery_autopilot_tracked_task_evictions')).toBe(false);
    const pkg = (await import('../../package.json', { with: { type: 'json' } })) as { default: { version: string } };
    expect(VERSION).toBe(pkg.default.version);
    expect(m.find((x) => x.name === 'celery_autopilot_build_info')?.labels.version).toBe(pkg.default.version);
  });

  it("static labels reach every series one way: the Celery families, our own and Node's", async () => {
    const s = service(['--metrics-static-labels', 'cluster=eu-1']);
    s.celeryMetrics.countTask('received', 't', 'w@h', 'q');
    const m = await scrape(s);
    for (const name of [
      'celery_task_received_total',
      'celery_autopilot_broker_connected',
      'process_cpu_seconds_total',
      'celery_autopilot_build_info',
    ]) {
      const series = m.filter((x) => x.name === name);
      expect(series.length, name).toBeGreaterThan(0);
      for (const x of series) expect(x.labels.cluster, name).toBe('eu-1');
    }
  });
});
