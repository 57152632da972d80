import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { metricsMarkdown, serviceWithoutBroker } from '../../src/metrics-reference.js';
import type { Service } from '../../src/service.js';

/** `# HELP` and `# TYPE` of every family in one scrape, by name. */
async function exposedFamilies(service: Service): Promise<Map<string, { type: string; help: string }>> {
  let text = '';
  for await (const chunk of service.metricsChunks()) text += chunk;
  const families = new Map<string, { type: string; help: string }>();
  for (const [, kind, name, rest] of text.matchAll(/^# (HELP|TYPE) (\S+) (.*)$/gm)) {
    const family = families.get(name!) ?? { type: '', help: '' };
    if (kind === 'HELP') family.help = rest!;
    else family.type = rest!;
    families.set(name!, family);
  }
  return families;
}

describe('metric families and the modules that own them', () => {
  it('every family /metrics exposes is listed by exactly one owner, with the type and HELP it is exposed with', async () => {
    const service = serviceWithoutBroker();
    const exposed = await exposedFamilies(service);
    const owners = new Map<string, string[]>();
    for (const owner of service.telemetry) for (const f of owner.telemetry) owners.set(f.name, [...(owners.get(f.name) ?? []), owner.name]);

    expect([...owners].filter(([, claimedBy]) => claimedBy.length > 1)).toEqual([]);
    expect([...exposed.keys()].filter((name) => !owners.has(name))).toEqual([]);
    expect([...owners.keys()].filter((name) => !exposed.has(name))).toEqual([]);
    for (const f of service.telemetry.flatMap((o) => o.telemetry)) {
      expect({ name: f.name, type: f.type, help: f.help }).toEqual({ name: f.name, ...exposed.get(f.name) });
    }
  });

  it('names the owners in the order they are built: the exporter, the features, the persistence', () => {
    expect(serviceWithoutBroker().telemetry.map((o) => o.name)).toEqual([
      'exporter',
      'auth',
      'console',
      'tasks',
      'control',
      'remediation',
      'persistence',
    ]);
  });

  it('the per-task families, streamed after the registry, are the exporter’s with their label names', () => {
    const exporter = serviceWithoutBroker().telemetry.find((o) => o.name === 'exporter')!;
    const streamed = exporter.telemetry.filter((f) => f.streamed);
    expect(streamed.map((f) => [f.name, f.labels.join(',')])).toEqual([
      ...['sent', 'received', 'started', 'succeeded', 'rejected', 'revoked', 'retried'].map((s) => [
        `celery_task_${s}_total`,
        'name,hostname,queue_name',
      ]),
      ['celery_task_failed_total', 'name,hostname,exception,queue_name'],
      ['celery_task_runtime', 'name,hostname,queue_name'],
      ['celery_task_queue_wait_time', 'name,hostname,queue_name'],
    ]);
  });

  it('docs/metrics.md is the generated one (run npm run docs:metrics after adding or changing a family)', () => {
    const current = readFileSync(path.resolve(import.meta.dirname, '../../docs/metrics.md'), 'utf8');
    expect(current === metricsMarkdown(serviceWithoutBroker().telemetry), 'docs/metrics.md is stale: run npm run docs:metrics').toBe(true);
  });
});
