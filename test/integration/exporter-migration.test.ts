import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { sendTasks } from '../support/celery/client.js';
import { startWorker, type CeleryWorker } from '../support/celery/worker.js';
import { startExporter, waitFor, type RunningExporter } from '../support/exporter.js';
import { isolatedBroker, type BrokerUnderTest } from '../support/exporter-scenarios.js';
import { REPO_ROOT, startPrometheus, type RunningPrometheus } from '../support/prometheus.js';

/**
 * README "Migrating from celery-exporter": its metric_relabel_configs snippet, taken from the
 * README itself, on a real Prometheus scraping the exporter while a real worker runs tasks,
 * gives celery-exporter's hostname values.
 */

function readmeRelabelConfigs(): Array<Record<string, unknown>> {
  const readme = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Migrating from celery-exporter'));
  const block = /```yaml\n([\s\S]*?)```/.exec(section);
  if (!block) throw new Error('no yaml block in README "Migrating from celery-exporter"');
  const doc = parseYaml(block[1]!.replace(/^ {2}/gm, '')) as {
    scrape_configs: Array<{ metric_relabel_configs: Array<Record<string, unknown>> }>;
  };
  return doc.scrape_configs[0]!.metric_relabel_configs;
}

describe('README relabel snippet reproduces celery-exporter hostname values on a real Prometheus', () => {
  const JOB = 'migration';
  const host = `mig-host-${randomUUID().slice(0, 6)}`;
  let broker: BrokerUnderTest;
  let exporter: RunningExporter;
  let worker: CeleryWorker;
  let prometheus: RunningPrometheus;

  const vector = async (expr: string) => {
    const d = await prometheus.query(expr);
    return d.resultType === 'vector' ? d.result : [];
  };

  beforeAll(async () => {
    broker = await isolatedBroker('redis', 'migration');
    exporter = await startExporter([...broker.exporterArgs, '--metrics-inspect-interval-seconds', '2']);
    await waitFor('exporter ready', async () => ((await exporter.get('/-/ready')).status === 200 ? true : undefined), 20_000);
    [worker, prometheus] = await Promise.all([
      startWorker({
        brokerUrl: broker.celery.brokerUrl,
        transportOptions: broker.celery.transportOptions,
        nodename: `celery@${host}`,
        queues: ['mig'],
        pool: 'solo',
      }),
      startPrometheus({ targets: [{ job: JOB, url: `${exporter.url}/metrics`, metricRelabelConfigs: readmeRelabelConfigs() }] }),
    ]);
  });

  afterAll(async () => {
    await worker?.stop();
    await prometheus?.stop();
    await exporter?.stop();
    await broker?.cleanup();
  });

  it('celery@<host> becomes <host>; generic stays generic; no value keeps an @', async () => {
    await sendTasks({ ...broker.celery, sendSentEvent: true }, [{ name: 'tasks.add', args: [1, 2], queue: 'mig' }]);
    let seen = '';
    await waitFor(
      'Prometheus to hold the relabelled series',
      async () => {
        const [up, succeeded, sent] = await Promise.all([
          vector(`celery_worker_up{job="${JOB}",hostname="${host}"}`),
          vector(`celery_task_succeeded_total{job="${JOB}",hostname="${host}",name="tasks.add"}`),
          vector(`celery_task_sent_total{job="${JOB}",hostname="generic",name="tasks.add"}`),
        ]);
        seen = JSON.stringify({ up, succeeded, sent });
        return up[0]?.value[1] === '1' && succeeded[0]?.value[1] === '1' && sent[0]?.value[1] === '1' ? true : undefined;
      },
      60_000,
      500,
      () => seen,
    );
    // The exporter itself still says celery@<host>: the rewrite is Prometheus's alone.
    expect((await exporter.scrape()).some((s) => s.name === 'celery_worker_up' && s.labels.hostname === `celery@${host}`)).toBe(true);
    expect(await vector(`{job="${JOB}",hostname=~".*@.*"}`)).toEqual([]);
  });
});
