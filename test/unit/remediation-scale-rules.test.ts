import { describe, expect, it } from 'vitest';
import { rulesProblems } from '../support/rules.js';

const rule = (body: string) => `rules:\n  - name: s\n    match: { labels: { alertname: Backlog } }\n${body}`;
describe('scale_deployment rules are checked whole at load', () => {
  it('accepts the documented shape: a templated target, by or replicas, bounds, a shrink-back', () => {
    expect(
      rulesProblems(
        rule(`    action: scale_deployment
    arguments: { by: "{{ annotations.by | default: 1 }}" }
    target: { deployment: "{{ labels.deployment }}", namespace: celery }
    bounds: { min_replicas: 1, max_replicas: 10 }
    on_resolved: { action: scale_deployment, arguments: { by: -1 } }
`),
      ),
    ).toEqual([]);
    expect(
      rulesProblems(
        rule(
          `    action: scale_deployment\n    arguments: { replicas: "4" }\n    target: { queue_label: queue_name }\n    bounds: { min_replicas: 0, max_replicas: 4 }\n`,
        ),
      ),
    ).toEqual([]);
  });

  it.each([
    ['no bounds', '    arguments: { by: 1 }\n    target: { deployment: w }\n', /needs bounds.min_replicas and bounds.max_replicas/],
    [
      'min above max',
      '    arguments: { by: 1 }\n    target: { deployment: w }\n    bounds: { min_replicas: 5, max_replicas: 2 }\n',
      /min_replicas is above/,
    ],
    [
      'both by and replicas',
      '    arguments: { by: 1, replicas: 2 }\n    target: { deployment: w }\n    bounds: { min_replicas: 0, max_replicas: 2 }\n',
      /exactly one of arguments.by/,
    ],
    [
      'by 0',
      '    arguments: { by: 0 }\n    target: { deployment: w }\n    bounds: { min_replicas: 0, max_replicas: 2 }\n',
      /by must not be 0/,
    ],
    [
      'a fraction',
      '    arguments: { by: 1.5 }\n    target: { deployment: w }\n    bounds: { min_replicas: 0, max_replicas: 2 }\n',
      /must be an integer/,
    ],
    [
      'other arguments',
      '    arguments: { by: 1, n: 2 }\n    target: { deployment: w }\n    bounds: { min_replicas: 0, max_replicas: 2 }\n',
      /takes only by or replicas/,
    ],
    [
      'a worker target',
      '    arguments: { by: 1 }\n    target: { pattern: "celery@*" }\n    bounds: { min_replicas: 0, max_replicas: 2 }\n',
      /needs target.deployment/,
    ],
    [
      'target.allow',
      '    arguments: { by: 1 }\n    target: { deployment: w, allow: "celery@*" }\n    bounds: { min_replicas: 0, max_replicas: 2 }\n',
      /target.allow names workers/,
    ],
    [
      'a broken template',
      '    arguments: { by: 1 }\n    target: { deployment: "{{ labels.x" }\n    bounds: { min_replicas: 0, max_replicas: 2 }\n',
      /target:/,
    ],
    [
      'an on_resolved that is not a scale',
      '    arguments: { by: 1 }\n    target: { deployment: w }\n    bounds: { min_replicas: 0, max_replicas: 2 }\n    on_resolved: { action: pool_shrink, arguments: { n: 1 } }\n',
      /on_resolved of a scale_deployment rule must scale/,
    ],
  ])('refuses %s', (_what, body, message) => {
    expect(rulesProblems(rule(`    action: scale_deployment\n${body}`)).join('\n')).toMatch(message);
  });

  it('target.deployment belongs to scale_deployment only', () => {
    expect(
      rulesProblems(
        rule('    action: pool_grow\n    arguments: { n: 1 }\n    target: { deployment: w }\n    bounds: { max_pool_processes: 4 }\n'),
      ).join('\n'),
    ).toMatch(/target.deployment is for scale_deployment/);
  });
});
