import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/audit/audit-log.js';
import { silentLogger } from '../../src/log.js';
import { ActionMetrics } from '../../src/metrics/remediation-metrics.js';
import type { Alert, Notification } from '../../src/remediation/alertmanager.js';
import { Remediator, type RemediationExecutor, type RemediationOptions, type TargetOutcome } from '../../src/remediation/engine.js';
import { compileRules, type RemediationAction } from '../../src/remediation/rules.js';
import { MemoryState } from '../../src/remediation/state.js';
import { metricValue, parseMetrics } from '../support/prom.js';

/** A fake cluster: pure logic only, so the safeguards can be checked exhaustively. */
class FakeCluster implements RemediationExecutor {
  connected = true;
  queues = new Map<string, string[]>([['images', ['celery@a', 'celery@b']]]);
  processes = new Map<string, number>([
    ['celery@a', 2],
    ['celery@b', 7],
    ['celery@c', 1],
  ]);
  sent: Array<{ action: RemediationAction; args: Record<string, unknown>; workers: string[] }> = [];
  silent = new Set<string>();
  /** Workers that refuse this many shrinks with billiard's "all processes busy" first. */
  busy = new Map<string, number>();
  brokerConnected = () => this.connected;
  consumersOf = (q: string) => this.queues.get(q) ?? [];
  matching = (p: string) => [...this.processes.keys()].filter((w) => new RegExp(`^${p.replace(/\*/g, '.*')}$`).test(w));
  poolStats = async (workers: string[]) =>
    new Map(workers.filter((w) => this.processes.has(w)).map((w) => [w, { processes: this.processes.get(w)! }]));
  run = async (action: RemediationAction, args: Record<string, unknown>, workers: string[]): Promise<TargetOutcome[]> => {
    this.sent.push({ action, args, workers });
    return workers.map((worker) => {
      if (this.silent.has(worker)) return { worker, status: 'no_reply' as const };
      const refusals = this.busy.get(worker) ?? 0;
      if (action === 'pool_shrink' && refusals > 0) {
        this.busy.set(worker, refusals - 1);
        return {
          worker,
          status: 'error' as const,
          kind: 'pool_busy' as const,
          message: 'every pool process is busy right now, so none can be removed; try again when a task has finished',
        };
      }
      return { worker, status: 'ok' as const };
    });
  };
}

const RULES = `
rules:
  - name: grow
    match: { labels: { alertname: Backlog } }
    action: pool_grow
    arguments: { n: "{{ annotations.grow_by | default: 2 }}" }
    target: { queue_label: queue_name }
    bounds: { max_pool_processes: 8 }
    cooldown_seconds: 300
    max_actions: { count: 3, window_seconds: 3600 }
    on_resolved: { action: pool_shrink, arguments: { n: 5 } }
  - name: shrink-worker
    match: { labels: { alertname: Idle } }
    action: pool_shrink
    arguments: { n: 1 }
    target: { worker_label: hostname }
    bounds: { min_pool_processes: 1 }
  - name: autoscale
    match: { labels: { alertname: Scale } }
    action: autoscale
    arguments: { max: "{{ labels.max }}", min: "{{ labels.min }}" }
    target: { worker_label: hostname }
    bounds: { max_autoscale: 10 }
    dry_run: false
`;

function setup(options: Partial<RemediationOptions> = {}, rules = RULES) {
  const cluster = new FakeCluster();
  const registry = new Registry();
  const metrics = new ActionMetrics(registry, 'celery_autopilot_');
  const audit = new AuditLog(undefined);
  let now = 1_800_000_000_000;
  const state = new MemoryState(() => now);
  const remediator = new Remediator(compileRules(rules, []), cluster, state, audit, metrics, silentLogger(), {
    dryRun: false,
    killSwitch: false,
    allowDangerous: [],
    memorySeconds: 86_400,
    inFlightSeconds: 60,
    busyShrinkRetries: 3,
    busyShrinkRetryMs: 1,
    ...options,
  });
  const post = async (...alerts: Alert[]) => {
    const r = remediator.accept({ version: '4', truncatedAlerts: 0, malformedAlerts: 0, alerts } satisfies Notification);
    await remediator.idle();
    return r;
  };
  const read = async () => parseMetrics(await registry.metrics());
  return { cluster, remediator, audit, post, read, advance: (ms: number) => (now += ms) };
}

const alert = (labels: Record<string, string>, extra: Partial<Alert> = {}): Alert => ({
  status: 'firing',
  labels,
  annotations: {},
  startsAt: '2026-11-30T00:00:00Z',
  fingerprint: `fp-${labels.alertname}-${labels.queue_name ?? labels.hostname ?? ''}`,
  ...extra,
});
const backlog = (extra: Partial<Alert> = {}) => alert({ alertname: 'Backlog', queue_name: 'images' }, extra);

describe('remediation safeguards', () => {
  it("acts once on the workers consuming the alert's queue, clamping grow to the ceiling", async () => {
    const { cluster, post, audit } = setup();
    await post(backlog());
    // a: 2 → +2 (room 6); b: 7 → +1 only (ceiling 8): two commands, never past the ceiling.
    expect(cluster.sent).toHaveLength(2);
    expect(cluster.sent.flatMap((s) => s.workers).sort()).toEqual(['celery@a', 'celery@b']);
    expect(cluster.sent.find((s) => s.workers.includes('celery@b'))!.args).toEqual({ n: 1 });
    expect(cluster.sent.find((s) => s.workers.includes('celery@a'))!.args).toEqual({ n: 2 });
    expect(audit.recent('remediation')[0]).toMatchObject({ rule: 'grow', outcome: 'acted', targets: ['celery@a', 'celery@b'] });
  });

  it('an on_resolved step of the same action is not held up by the cooldown of the step it undoes', async () => {
    const rules = `
rules:
  - name: limit
    match: { labels: { alertname: Failing } }
    action: rate_limit
    arguments: { task_name: tasks.x, rate_limit: 30/m }
    target: { queue_label: queue_name }
    cooldown_seconds: 1800
    on_resolved: { action: rate_limit, arguments: { task_name: tasks.x, rate_limit: "0" } }
`;
    const { cluster, post } = setup({}, rules);
    const failing = alert({ alertname: 'Failing', queue_name: 'images' });
    await post(failing);
    await post({ ...failing, status: 'resolved' });
    expect(cluster.sent.map((s) => s.args.rate_limit)).toEqual(['30/m', '0']);
    // ...while a second firing of another instance inside the cooldown still waits.
    await post(alert({ alertname: 'Failing', queue_name: 'images' }, { startsAt: '2026-11-30T03:00:00Z' }));
    expect(cluster.sent).toHaveLength(2);
  });

  it('the same notification three times sends one command', async () => {
    const { cluster, post, read } = setup();
    await post(backlog());
    await post(backlog());
    await post(backlog());
    expect(cluster.sent.flatMap((s) => s.workers)).toHaveLength(2);
    const m = await read();
    expect(metricValue(m, 'celery_autopilot_remediation_suppressed_total', { rule: 'grow', reason: 'duplicate' })).toBe(2);
    expect(metricValue(m, 'celery_autopilot_remediation_decisions_total', { rule: 'grow', outcome: 'acted' })).toBe(1);
  });

  it('a new alert instance for the same target inside the cooldown does nothing', async () => {
    const { cluster, post, advance } = setup();
    await post(backlog());
    await post(backlog({ startsAt: '2026-11-30T01:00:00Z' }));
    expect(cluster.sent).toHaveLength(2);
    advance(301_000);
    await post(backlog({ startsAt: '2026-11-30T02:00:00Z' }));
    expect(cluster.sent.length).toBeGreaterThan(2);
  });

  it('a missing or empty target label, or a queue nobody consumes, sends nothing (never a broadcast)', async () => {
    const { cluster, post, audit } = setup();
    await post(
      alert({ alertname: 'Backlog' }),
      alert({ alertname: 'Backlog', queue_name: '' }),
      alert({ alertname: 'Backlog', queue_name: 'nobody' }),
      alert({ alertname: 'Idle' }),
    );
    expect(cluster.sent).toEqual([]);
    expect(audit.recent('remediation').map((d) => d.reason)).toEqual(['no_target', 'no_target', 'no_target', 'no_target']);
  });

  it('refuses to shrink below the floor and autoscale with min > max or above the ceiling', async () => {
    const { cluster, post, audit } = setup();
    await post(alert({ alertname: 'Idle', hostname: 'celery@c' }));
    await post(alert({ alertname: 'Scale', hostname: 'celery@a', min: '5', max: '2' }));
    await post(alert({ alertname: 'Scale', hostname: 'celery@b', min: '1', max: '11' }));
    expect(cluster.sent).toEqual([]);
    expect(audit.recent('remediation').map((d) => d.reason)).toEqual(['bound', 'bound', 'bound']);
  });

  it('with no cooldown, a second grow right after the first counts it before stats show it (never past the ceiling)', async () => {
    const rules = RULES.replace('cooldown_seconds: 300', 'cooldown_seconds: 0');
    const { cluster, post, advance } = setup({}, rules);
    cluster.queues.set('images', ['celery@a']);
    cluster.processes.set('celery@a', 5);
    await post(backlog({ startsAt: 't1' })); // +2 → 7, but stats still say 5
    await post(backlog({ startsAt: 't2' })); // only 1 more fits under 8
    await post(backlog({ startsAt: 't3' })); // nothing fits
    expect(cluster.sent.map((x) => x.args.n)).toEqual([2, 1]);
    advance(11_000); // the pool's tick has passed: stats are the truth again
    cluster.processes.set('celery@a', 8);
    await post(backlog({ startsAt: 't4' }));
    expect(cluster.sent).toHaveLength(2);
  });

  it('a grow that stats already show, while its pending size is still kept, is not counted twice', async () => {
    const rules = RULES.replace('cooldown_seconds: 300', 'cooldown_seconds: 0');
    const { cluster, post, advance } = setup({}, rules);
    cluster.queues.set('images', ['celery@a']);
    cluster.processes.set('celery@a', 4);
    await post(backlog({ startsAt: 't1' })); // +2 → heading to 6
    advance(5_000); // the pool's tick: stats show 6 before the 10 s pending window ends
    cluster.processes.set('celery@a', 6);
    await post(backlog({ startsAt: 't2' })); // 6, not 6 + 2: two more fit under 8
    expect(cluster.sent.map((x) => x.args.n)).toEqual([2, 2]);
  });

  it('grow at the ceiling is refused and audited', async () => {
    const { cluster, post, audit } = setup();
    cluster.processes.set('celery@a', 8);
    cluster.processes.set('celery@b', 9);
    await post(backlog());
    expect(cluster.sent).toEqual([]);
    expect(audit.recent('remediation')[0]).toMatchObject({ outcome: 'suppressed', reason: 'bound' });
  });

  it('kill switch and dry-run put nothing on the wire but audit the would-be command', async () => {
    const k = setup({ killSwitch: true });
    await k.post(backlog());
    expect(k.cluster.sent).toEqual([]);
    expect(k.audit.recent()[0]).toMatchObject({ outcome: 'suppressed', reason: 'kill_switch' });
    const d = setup({ dryRun: true });
    await d.post(backlog());
    expect(d.cluster.sent).toEqual([]);
    expect(d.audit.recent()[0]).toMatchObject({
      outcome: 'dry_run',
      action: 'pool_grow',
      targets: ['celery@a', 'celery@b'],
      arguments: { n: 2 },
    });
  });

  it('asks Alertmanager to retry (nothing recorded) when the broker is down, and sends nothing late', async () => {
    const { cluster, remediator, post } = setup();
    cluster.connected = false;
    expect(remediator.accept({ version: '4', truncatedAlerts: 0, malformedAlerts: 0, alerts: [backlog()] }).status).toBe('retry');
    await remediator.idle();
    cluster.connected = true;
    await new Promise((r) => setTimeout(r, 10));
    expect(cluster.sent).toEqual([]);
    // The retry delivery then acts normally.
    await post(backlog());
    expect(cluster.sent.length).toBe(2);
  });

  it('a worker that does not answer is recorded as no_reply and not retried', async () => {
    const { cluster, post, audit } = setup();
    cluster.silent.add('celery@c');
    await post(alert({ alertname: 'Idle', hostname: 'celery@a' }));
    cluster.processes.set('celery@c', 3);
    await post(alert({ alertname: 'Idle', hostname: 'celery@c' }));
    await post(alert({ alertname: 'Idle', hostname: 'celery@c' }));
    expect(cluster.sent.filter((s) => s.workers.includes('celery@c'))).toHaveLength(1);
    expect(audit.recent('remediation').map((d) => d.outcome)).toEqual(['suppressed', 'no_reply', 'acted']);
  });

  it('50 alerts in one POST, some for unknown workers: one decision each, the cap honoured', async () => {
    const rules = `
rules:
  - name: shrink
    match: { labels: { alertname: Idle } }
    action: pool_shrink
    arguments: { n: 1 }
    target: { worker_label: hostname }
    max_actions: { count: 10, window_seconds: 3600 }
`;
    const { cluster, remediator, audit } = setup({}, rules);
    for (let i = 0; i < 50; i++) cluster.processes.set(`celery@w${i}`, 4);
    const alerts = Array.from({ length: 50 }, (_, i) =>
      alert({ alertname: 'Idle', hostname: i % 5 === 0 ? `celery@ghost${i}` : `celery@w${i}` }, { fingerprint: `f${i}` }),
    );
    expect(remediator.accept({ version: '4', truncatedAlerts: 12, malformedAlerts: 0, alerts }).jobs).toBe(50);
    await remediator.idle();
    const decisions = audit.recent('remediation', 1000);
    expect(decisions).toHaveLength(50);
    expect(cluster.sent).toHaveLength(10);
    expect(decisions.filter((d) => d.reason === 'cap')).toHaveLength(30);
    expect(decisions.filter((d) => d.reason === 'bound')).toHaveLength(10); // the ghosts: no live stats
  });

  it('on resolve, shrinks back only what this alert grew, never below where it started', async () => {
    const { cluster, post } = setup();
    await post(backlog());
    cluster.processes.set('celery@a', 4);
    cluster.processes.set('celery@b', 8);
    cluster.sent = [];
    await post(backlog({ status: 'resolved' }));
    // on_resolved asks for n=5, but a grew by 2 and b by 1.
    expect(cluster.sent.find((s) => s.workers.includes('celery@a'))).toMatchObject({ action: 'pool_shrink', args: { n: 2 } });
    expect(cluster.sent.find((s) => s.workers.includes('celery@b'))).toMatchObject({ action: 'pool_shrink', args: { n: 1 } });
    cluster.sent = [];
    await post(backlog({ status: 'resolved' }));
    expect(cluster.sent).toEqual([]);
  });

  it('a shrink refused because all pool processes are busy is tried again for that worker only, then gives up', async () => {
    const { cluster, post, audit } = setup();
    cluster.busy.set('celery@a', 2);
    await post(alert({ alertname: 'Idle', hostname: 'celery@a' }));
    expect(cluster.sent.map((x) => x.workers)).toEqual([['celery@a'], ['celery@a'], ['celery@a']]);
    expect(audit.recent('remediation')[0]).toMatchObject({ outcome: 'acted' });

    cluster.busy.set('celery@b', 99);
    cluster.sent = [];
    await post(alert({ alertname: 'Idle', hostname: 'celery@b' }));
    expect(cluster.sent).toHaveLength(4); // the first try and 3 retries
    expect(audit.recent('remediation')[0]).toMatchObject({ outcome: 'failed' });
  });

  it('resolved notifications of rules without on_resolved are ignored', async () => {
    const { cluster, remediator } = setup();
    expect(
      remediator.accept({
        version: '4',
        truncatedAlerts: 0,
        malformedAlerts: 0,
        alerts: [alert({ alertname: 'Idle', hostname: 'celery@a' }, { status: 'resolved' })],
      }).jobs,
    ).toBe(0);
    await remediator.idle();
    expect(cluster.sent).toEqual([]);
  });

  it('target.allow keeps a label-driven rule on the workers it is meant for', async () => {
    const rules = `
rules:
  - name: shrink-web
    match: { labels: { alertname: Idle } }
    action: pool_shrink
    arguments: { n: 1 }
    target: { worker_label: hostname, allow: "celery@a*" }
  - name: grow-images
    match: { labels: { alertname: Backlog } }
    action: pool_grow
    arguments: { n: 1 }
    target: { queue_label: queue_name, allow: ["celery@b", "celery@z*"] }
    bounds: { max_pool_processes: 8 }
`;
    const { cluster, post, audit } = setup({}, rules);
    // A series whose hostname label names a worker outside the rule's reach (a Pushgateway...).
    await post(alert({ alertname: 'Idle', hostname: 'celery@c' }));
    expect(cluster.sent).toEqual([]);
    expect(audit.recent('remediation')[0]).toMatchObject({
      outcome: 'suppressed',
      reason: 'not_allowed',
      skipped: [{ worker: 'celery@c', reason: 'not_allowed', detail: 'outside target.allow' }],
    });
    await post(backlog());
    expect(cluster.sent).toEqual([{ action: 'pool_grow', args: { n: 1 }, workers: ['celery@b'] }]);
    expect(audit.recent('remediation')[0]).toMatchObject({
      outcome: 'acted',
      targets: ['celery@b'],
      skipped: [{ worker: 'celery@a', reason: 'not_allowed' }],
    });
  });

  it('one conversion: a numeric label rendered into n is a number for the bounds and for the command alike', async () => {
    const rules = `
rules:
  - name: shrink
    match: { labels: { alertname: Idle } }
    action: pool_shrink
    arguments: { n: "{{ labels.by }}0" }
    target: { worker_label: hostname }
  - name: consume
    match: { labels: { alertname: Consume } }
    action: add_consumer
    arguments: { queue: "{{ labels.queue }}" }
    target: { worker_label: hostname }
`;
    const { cluster, post, audit } = setup({}, rules);
    cluster.processes.set('celery@b', 20);
    await post(alert({ alertname: 'Idle', hostname: 'celery@b', by: '1' }));
    expect(cluster.sent).toEqual([{ action: 'pool_shrink', args: { n: 10 }, workers: ['celery@b'] }]);
    // A rendered value the command refuses is refused by the command's validator, before anything is sent.
    await post(alert({ alertname: 'Consume', hostname: 'celery@a', queue: 'no spaces allowed' }));
    expect(cluster.sent).toHaveLength(1);
    expect(audit.recent('remediation')[0]).toMatchObject({
      rule: 'consume',
      outcome: 'failed',
      reason: 'bad_arguments',
      targets: ['celery@a'],
    });
    expect(audit.recent('remediation')[0]!.error).toMatch(/^queue: /);
  });

  it('waits between busy-shrink retries with the injected sleep', async () => {
    const slept: number[] = [];
    const cluster = new FakeCluster();
    cluster.busy.set('celery@a', 2);
    const audit = new AuditLog(undefined);
    const remediator = new Remediator(
      compileRules(RULES, []),
      cluster,
      new MemoryState(),
      audit,
      new ActionMetrics(new Registry(), 'x_'),
      silentLogger(),
      {
        dryRun: false,
        killSwitch: false,
        allowDangerous: [],
        memorySeconds: 86_400,
        inFlightSeconds: 60,
        busyShrinkRetries: 3,
        busyShrinkRetryMs: 60_000,
      },
      { sleep: async (ms) => void slept.push(ms) },
    );
    remediator.accept({
      version: '4',
      truncatedAlerts: 0,
      malformedAlerts: 0,
      alerts: [alert({ alertname: 'Idle', hostname: 'celery@a' })],
    });
    await remediator.idle();
    expect(slept).toEqual([60_000, 60_000]);
    expect(audit.recent('remediation')[0]).toMatchObject({ outcome: 'acted' });
  });
});

describe('remediation state in memory', () => {
  it('is bounded by entries, not only by age: expired keys go first, then the oldest, counted', async () => {
    let now = 0;
    let evicted = 0;
    const state = new MemoryState(() => now, { maxEntries: 100, onEvict: (n) => (evicted += n) });
    for (let i = 0; i < 50; i++) await state.put(`short:${i}`, '1', 1000);
    for (let i = 0; i < 50; i++) await state.claim(`long:${i}`, 3_600_000);
    now = 2000;
    await state.claim('new:0', 3_600_000);
    expect([state.size, evicted]).toEqual([51, 0]);
    for (let i = 1; i < 1000; i++) await state.claim(`new:${i}`, 3_600_000);
    expect(state.size).toBeLessThanOrEqual(100);
    expect(evicted).toBeGreaterThan(0);
    expect(await state.has('new:999')).toBe(true);
    expect(await state.has('long:0')).toBe(false);
  });
});
