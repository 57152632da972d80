import { describe, expect, it } from 'vitest';
import { TaskSeriesStore } from '../../src/metrics/task-series.js';
import { metricValue, parseMetrics } from '../support/prom.js';

function store(maxSeries = 100, staticLabels: Record<string, string> = {}) {
  return new TaskSeriesStore({
    prefix: 'celery_',
    runtimeBuckets: [0.1, 1],
    queueWaitBuckets: [1],
    staticLabels,
    maxSeries,
    overflowValue: 'other',
  });
}
const text = (s: TaskSeriesStore, chunk?: number) => [...s.render(chunk)].join('');

describe('task series exposition', () => {
  it('renders counters, failures and cumulative histograms in Prometheus text format', () => {
    const s = store();
    s.count('received', 't', 'w@h', 'q');
    s.count('received', 't', 'w@h', 'q');
    s.countFailed('t', 'w@h', 'q', 'ValueError');
    for (const v of [0.05, 0.5, 5]) s.observeRuntime('t', 'w@h', 'q', v);
    const out = text(s);
    expect(out).toContain(
      '# TYPE celery_task_received_total counter\ncelery_task_received_total{name="t",hostname="w@h",queue_name="q"} 2\n',
    );
    expect(out).toContain('celery_task_failed_total{name="t",hostname="w@h",exception="ValueError",queue_name="q"} 1\n');
    expect(out).toContain('# TYPE celery_task_runtime histogram\n');
    const m = parseMetrics(out);
    expect(metricValue(m, 'celery_task_runtime_bucket', { le: '0.1' })).toBe(1);
    expect(metricValue(m, 'celery_task_runtime_bucket', { le: '1' })).toBe(2);
    expect(metricValue(m, 'celery_task_runtime_bucket', { le: '+Inf' })).toBe(3);
    expect(metricValue(m, 'celery_task_runtime_count')).toBe(3);
    expect(metricValue(m, 'celery_task_runtime_sum')).toBeCloseTo(5.55);
    // A worker event zero-initialises the other counter families (celery-exporter's
    // rule); histograms with nothing observed still show no series.
    expect(metricValue(m, 'celery_task_revoked_total', { name: 't', hostname: 'w@h', queue_name: 'q' })).toBe(0);
    expect(m.some((x) => x.name === 'celery_task_queue_wait_time_count')).toBe(false);
  });

  it('escapes label values and appends static labels', () => {
    const s = store(100, { env: 'prod' });
    s.count('sent', 'we"ird\\name\nx', 'w@h', 'q');
    const out = text(s);
    expect(out).toContain('name="we\\"ird\\\\name\\nx",hostname="w@h",queue_name="q",env="prod"} 1');
    expect(parseMetrics(out)[0]!.labels.name).toBe('we"ird\\name\nx');
  });

  it('folds combinations past the cap into one overflow series, counting nothing twice', () => {
    const s = store(3);
    for (let i = 0; i < 10; i++) s.count('received', `t${i}`, 'w@h', 'q');
    const m = parseMetrics(text(s));
    expect(m.filter((x) => x.name === 'celery_task_received_total')).toHaveLength(4);
    expect(metricValue(m, 'celery_task_received_total', { name: 'other', hostname: 'other', queue_name: 'other' })).toBe(7);
    expect(metricValue(m, 'celery_task_received_total')).toBe(10);
    expect(s.overflowed).toBe(7);
  });

  it('streams in chunks that add up to the same text', () => {
    const s = store(10_000);
    for (let i = 0; i < 500; i++) s.observeRuntime(`t${i}`, 'w@h', 'q', 0.5);
    const whole = text(s, 1 << 30);
    const chunks = [...s.render(4096)];
    expect(chunks.length).toBeGreaterThan(10);
    expect(chunks.join('')).toBe(whole);
  });

  it('removes every series of a departed worker', () => {
    const s = store();
    s.count('received', 't', 'gone@h', 'q');
    s.countFailed('t', 'gone@h', 'q', 'E');
    s.count('received', 't', 'stays@h', 'q');
    s.removeHostname('gone@h');
    expect(text(s)).not.toContain('gone@h');
    // stays@h: its combination and its zero-initialised failed{exception=""} series.
    expect(s.size).toBe(2);
  });

  it('a worker back after its removal counts into new series that are rendered', () => {
    const s = store();
    s.count('received', 't', 'back@h', 'q');
    s.removeHostname('back@h');
    s.count('received', 't', 'back@h', 'q');
    s.observeRuntime('t', 'back@h', 'q', 0.5);
    const m = parseMetrics(text(s));
    expect(metricValue(m, 'celery_task_received_total', { name: 't', hostname: 'back@h', queue_name: 'q' })).toBe(1);
    expect(metricValue(m, 'celery_task_runtime_count', { name: 't', hostname: 'back@h', queue_name: 'q' })).toBe(1);
  });
});

describe('zero-initialisation (celery-exporter: the other counters of a combination start at 0)', () => {
  const series = (s: TaskSeriesStore) => parseMetrics(text(s)).filter((x) => x.name.endsWith('_total'));
  const FAMILIES = ['sent', 'received', 'started', 'succeeded', 'rejected', 'revoked', 'retried'];

  it('a worker event shows every family a worker sends at 0 for its combination, and failed with exception=""', () => {
    const s = store();
    s.count('sent', 't', 'generic', 'q');
    s.count('received', 't', 'w@h', 'q');
    const m = series(s);
    for (const f of FAMILIES.filter((f) => f !== 'sent'))
      expect(metricValue(m, `celery_task_${f}_total`, { name: 't', hostname: 'w@h', queue_name: 'q' }), f).toBe(f === 'received' ? 1 : 0);
    expect(metricValue(m, 'celery_task_failed_total', { name: 't', hostname: 'w@h', queue_name: 'q', exception: '' })).toBe(0);
    // task-sent is counted under the client's label, never a worker's; a zero there could never move.
    expect(m.filter((x) => x.name === 'celery_task_sent_total').map((x) => x.labels.hostname)).toEqual(['generic']);
  });

  it('a hostname label task-sent is counted under (the overflow value both fold into) gets its sent zero, whichever came first', () => {
    for (const senderFirst of [true, false]) {
      const s = store();
      if (senderFirst) s.count('sent', 'a', 'other', 'q');
      s.count('received', 't', 'other', 'q');
      s.count('received', 't', 'w@h', 'q');
      if (!senderFirst) s.count('sent', 'a', 'other', 'q');
      const m = series(s);
      expect(
        metricValue(m, 'celery_task_sent_total', { name: 't', hostname: 'other', queue_name: 'q' }),
        `sender first: ${senderFirst}`,
      ).toBe(0);
      expect(metricValue(m, 'celery_task_sent_total', { name: 'a', hostname: 'other', queue_name: 'q' })).toBe(1);
      expect(metricValue(m, 'celery_task_sent_total', { hostname: 'w@h' })).toBeUndefined();
      // A purged label is no sender any more.
      s.removeHostname('other');
      s.count('received', 't', 'other', 'q');
      expect(metricValue(series(s), 'celery_task_sent_total', { hostname: 'other' })).toBeUndefined();
    }
  });

  it('task-sent creates nothing but its own series (clients are many: cardinality)', () => {
    const s = store();
    s.count('sent', 't', 'generic', 'q');
    expect(series(s).map((x) => `${x.name} ${x.value}`)).toEqual(['celery_task_sent_total 1']);
  });

  it('a first failure also zero-initialises, and keeps its exception series apart from exception=""', () => {
    const s = store();
    s.countFailed('t', 'w@h', 'q', 'ValueError');
    const m = series(s);
    expect(metricValue(m, 'celery_task_failed_total', { exception: 'ValueError' })).toBe(1);
    expect(metricValue(m, 'celery_task_failed_total', { exception: '' })).toBe(0);
    expect(metricValue(m, 'celery_task_revoked_total', { name: 't', hostname: 'w@h' })).toBe(0);
  });

  it('zeros stay within the series cap: no overflow series and no overflow count for them', () => {
    const s = store(1);
    s.count('received', 'a', 'w@h', 'q');
    // The failed map has room for one series: a's exception="" took it.
    s.countFailed('b', 'w@h', 'q', 'E');
    const m = series(s);
    expect(metricValue(m, 'celery_task_failed_total', { name: 'other', exception: 'other' })).toBe(1);
    expect(m.some((x) => x.labels.name === 'b')).toBe(false);
    expect(s.overflowed).toBe(1);
  });
});
