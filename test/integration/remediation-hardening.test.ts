import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { notification, postWebhook, startRemediationService, type RemediationService, type TestAlert } from '../support/alertmanager.js';
import { inspectStats } from '../support/celery/client.js';
import { startWorker, type CeleryWorker } from '../support/celery/worker.js';
import { waitFor } from '../support/exporter.js';
import { createVhost, uniqueId } from '../support/isolation.js';
import { describeCommands, startPidboxSpy, type PidboxSpy } from '../support/pidbox-spy.js';
import { metricValue } from '../support/prom.js';

/**
 * Remediation hardening against the real service (real RabbitMQ, a real Celery worker,
 * real HTTP): label-driven targets constrained by target.allow, a rule whose quoted number is
 * converted at load, and the in-memory audit and state bounded by size.
 */
describe('remediation hardening on RabbitMQ with a real worker', () => {
  const id = randomBytes(3).toString('hex');
  const nodename = `api-${id}@cap`;
  let dir: string;
  let vhost: Awaited<ReturnType<typeof createVhost>>;
  let service: RemediationService;
  let spy: PidboxSpy;
  let worker: CeleryWorker;
  const post = (alerts: TestAlert[]) => postWebhook(service.url, notification(alerts), service.webhookToken);
  const processes = async () => (await inspectStats({ brokerUrl: vhost.url }, [nodename]))[nodename]?.pool.processes?.length;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cap-hardening-'));
    const rules = path.join(dir, 'rules.yml');
    await writeFile(
      rules,
      `rules:
  # Only web workers, whatever worker the alert's hostname label names.
  - name: shrink-web-only
    match: { labels: { alertname: WebIdle } }
    action: pool_shrink
    arguments: { n: 1 }
    target: { worker_label: hostname, allow: "web-*@cap" }
  # A quoted number, as YAML users write it: converted at load, accepted by the command.
  - name: shrink-api
    match: { labels: { alertname: ApiIdle } }
    action: pool_shrink
    arguments: { n: "1" }
    target: { worker_label: hostname, allow: ["web-*@cap", "api-*@cap"] }
  # Cheap decisions, each remembering one alert instance (dry run: nothing is sent).
  - name: remember
    match: { labels: { alertname: Remember } }
    action: add_consumer
    arguments: { queue: "extra" }
    target: { pattern: "api-${id}@*" }
    dry_run: true
    cooldown_seconds: 0
  # Decisions with large labels and no target.
  - name: bulky
    match: { labels: { alertname: Bulky } }
    action: pool_shrink
    target: { worker_label: hostname }
`,
    );
    vhost = await createVhost(uniqueId('rem-hard'));
    service = await startRemediationService(['--broker-url', vhost.url], rules, {
      audit: { keep_bytes: 65_536 },
      remediation: { max_state_entries: 100, max_actions: { count: 100_000, window_seconds: 60 } },
    });
    spy = await startPidboxSpy({ kind: 'amqp', url: vhost.url });
    worker = await startWorker({ brokerUrl: vhost.url, nodename, concurrency: 2 });
    await waitFor(
      'the worker live in the service',
      () => (service.exporter.service.workers.alive().some((w) => w.hostname === nodename) ? true : undefined),
      30_000,
      200,
    );
  });

  afterAll(async () => {
    await worker?.stop();
    await spy?.close();
    await service?.stop();
    await vhost?.remove();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("target.allow: an alert naming a live worker outside the rule's globs sends nothing; inside them the rule acts", async () => {
    const mark = spy.mark();
    expect((await post([{ labels: { alertname: 'WebIdle', hostname: nodename } }])).status).toBe(200);
    await service.idle();
    await spy.barrier();
    // Not even the stats that bounds would read (the inspector's own rounds are left out).
    expect(spy.since(mark)).toEqual([]);
    expect((await service.decisions(1))[0]).toMatchObject({
      rule: 'shrink-web-only',
      outcome: 'suppressed',
      reason: 'not_allowed',
      skipped: [{ worker: nodename, reason: 'not_allowed', detail: 'outside target.allow' }],
    });

    expect((await post([{ labels: { alertname: 'ApiIdle', hostname: nodename } }])).status).toBe(200);
    await service.idle();
    await spy.barrier();
    expect(describeCommands(spy.since(mark).filter((c) => c.method !== 'stats'))).toBe(`pool_shrink → ${nodename}`);
    expect((await service.decisions(1))[0]).toMatchObject({
      rule: 'shrink-api',
      outcome: 'acted',
      arguments: { n: 1 },
      targets: [nodename],
    });
    await waitFor('the pool to shrink to 1 process', async () => ((await processes()) === 1 ? true : undefined), 20_000, 500);
  });

  it('the in-memory audit is bounded by size: large labels push old records out, the newest stay', async () => {
    const big = 'x'.repeat(4000);
    const alerts = Array.from({ length: 40 }, (_, i) => ({ labels: { alertname: 'Bulky', batch: id, n: String(i), padding: big } }));
    expect((await post(alerts)).status).toBe(200);
    await service.idle();
    const audit = service.exporter.service.audit;
    expect(audit.memoryBytes).toBeLessThanOrEqual(65_536);
    const kept = (await service.decisions()).filter((d) => d.alert.labels.batch === id);
    expect(kept.length).toBeGreaterThan(5);
    expect(kept.length).toBeLessThan(40);
    expect(kept[0]!.alert.labels.n).toBe('39');
  });

  it('the in-memory remediation state is bounded by entries; what it forgets is counted', async () => {
    const alerts = Array.from({ length: 300 }, (_, i) => ({ labels: { alertname: 'Remember', n: String(i) } }));
    expect((await post(alerts)).status).toBe(200);
    await service.idle();
    const outcomes = (await service.decisions()).filter((d) => d.rule === 'remember').map((d) => d.outcome);
    expect(new Set(outcomes)).toEqual(new Set(['dry_run']));
    const evicted = metricValue(await service.exporter.scrape(), 'celery_autopilot_remediation_state_evictions_total', {});
    expect(evicted).toBeGreaterThan(0);
  });
});
