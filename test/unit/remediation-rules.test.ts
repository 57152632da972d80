import { describe, expect, it } from 'vitest';
import { compileRules, ruleMatches } from '../../src/remediation/rules.js';
import { render, TemplateError } from '../../src/remediation/template.js';
import { parseNotification, PayloadError } from '../../src/remediation/alertmanager.js';
import type { Alert } from '../../src/remediation/alertmanager.js';
import { readFileSync } from 'node:fs';
import { FIXTURES_DIR } from '../support/fixtures.js';
import path from 'node:path';
import { rulesProblems } from '../support/rules.js';

const GROW = `
rules:
  - name: grow
    match: { labels: { alertname: CeleryQueueBacklog }, labels_regex: { queue_name: "default|images" } }
    action: pool_grow
    arguments: { n: "{{ annotations.grow_by | default: 1 }}" }
    target: { queue_label: queue_name }
    bounds: { max_pool_processes: 8 }
`;

const alert = (labels: Record<string, string>, extra: Partial<Alert> = {}): Alert => ({
  status: 'firing',
  labels,
  annotations: {},
  startsAt: '2026-11-30T00:00:00Z',
  fingerprint: 'f',
  ...extra,
});

describe('remediation rules', () => {
  it('compiles a valid rule with defaults', () => {
    const [rule] = compileRules(GROW, []);
    expect(rule).toMatchObject({
      name: 'grow',
      cooldown_seconds: 300,
      dry_run: false,
      bounds: { max_pool_processes: 8, min_pool_processes: 1 },
    });
  });

  it.each([
    [
      'unknown key',
      'rules: [{ name: a, match: {}, action: pool_shrink, target: { pattern: "x*" }, colour: red }]',
      'r.yml: rules.0: Unrecognized key: "colour"',
    ],
    [
      'unknown action',
      'rules: [{ name: a, match: {}, action: rm_rf, target: { pattern: "x*" } }]',
      'r.yml: rules.0.action: Invalid option',
    ],
    [
      'two targets',
      'rules: [{ name: a, match: {}, action: pool_shrink, target: { pattern: "x*", worker_label: hostname } }]',
      'give exactly one of queue_label, worker_label, pattern',
    ],
    [
      'no target',
      'rules: [{ name: a, match: {}, action: pool_shrink, target: {} }]',
      'give exactly one of queue_label, worker_label, pattern',
    ],
    [
      'grow without ceiling',
      'rules: [{ name: a, match: {}, action: pool_grow, target: { pattern: "x*" } }]',
      'r.yml: rules.0 (a): pool_grow needs bounds.max_pool_processes (a ceiling)',
    ],
    [
      'shutdown not enabled',
      'rules: [{ name: a, match: {}, action: shutdown, target: { worker_label: hostname } }]',
      'r.yml: rules.0 (a): shutdown is disabled (enable it in remediation.allow_dangerous_actions)',
    ],
    [
      'revoke terminate not enabled',
      'rules: [{ name: a, match: {}, action: revoke, arguments: { task_id: "{{ labels.task_id }}", terminate: true }, target: { worker_label: hostname } }]',
      'r.yml: rules.0 (a): revoke_terminate is disabled (enable it in remediation.allow_dangerous_actions)',
    ],
    [
      'bad regex',
      'rules: [{ name: a, match: { labels_regex: { q: "(" } }, action: pool_shrink, target: { pattern: "x*" } }]',
      'r.yml: rules.0 (a): match.labels_regex.q: Invalid regular expression',
    ],
    [
      'bad template',
      'rules: [{ name: a, match: {}, action: pool_shrink, arguments: { n: "{{ process.env.X }}" }, target: { pattern: "x*" } }]',
      'only {{ labels.NAME }} or {{ annotations.NAME | default: VALUE }} are allowed',
    ],
    [
      'duplicate names',
      `${GROW}\n  - name: grow\n    match: {}\n    action: pool_shrink\n    target: { pattern: "x*" }`,
      'r.yml: rules.1 (grow): duplicate rule name',
    ],
    ['not YAML', 'rules: [', 'r.yml: '],
  ])('rejects %s', (_name, yaml, message) => {
    expect(rulesProblems(yaml).some((p) => p.includes(message))).toBe(true);
  });

  it('allows dangerous actions once enabled', () => {
    expect(rulesProblems('rules: [{ name: a, match: {}, action: shutdown, target: { worker_label: hostname } }]', ['shutdown'])).toEqual(
      [],
    );
  });

  it('matches by equality and anchored regex, and by status', () => {
    const [rule] = compileRules(GROW, []);
    expect(ruleMatches(rule!, alert({ alertname: 'CeleryQueueBacklog', queue_name: 'default' }))).toBe(true);
    expect(ruleMatches(rule!, alert({ alertname: 'CeleryQueueBacklog', queue_name: 'default-archive' }))).toBe(false);
    expect(ruleMatches(rule!, alert({ alertname: 'Other', queue_name: 'default' }))).toBe(false);
    expect(ruleMatches(rule!, alert({ alertname: 'CeleryQueueBacklog', queue_name: 'default' }, { status: 'resolved' }))).toBe(false);
  });
});

describe("rule arguments checked at load by the command's own validator", () => {
  const rule = (action: string, args: string, extra = '') =>
    `rules: [{ name: r1, match: {}, action: ${action}, arguments: ${args}, target: { pattern: "celery@*" }${extra} }]`;
  const grow = (args: string) => rule('pool_grow', args, ', bounds: { max_pool_processes: 8 }');

  it('a quoted number for a numeric argument is converted at load', () => {
    expect(compileRules(grow('{ n: "2" }'), [])[0]!.arguments).toEqual({ n: 2 });
    expect(compileRules(rule('autoscale', '{ max: "4", min: "1" }', ', bounds: { max_autoscale: 8 }'), [])[0]!.arguments).toEqual({
      max: 4,
      min: 1,
    });
    expect(
      compileRules(
        rule('pool_shrink', '{ n: 1 }', ', on_resolved: { action: pool_grow, arguments: { n: "3" } }, bounds: { max_pool_processes: 8 }'),
        [],
      )[0]!.on_resolved!.arguments,
    ).toEqual({ n: 3 });
  });

  it.each([
    ['text for a number', grow('{ n: "one" }'), 'r.yml: rules.0 (r1): arguments.n: "one" is not a number'],
    ["a number out of the command's range", grow('{ n: 500 }'), 'r.yml: rules.0 (r1): arguments: n: must be an integer from 1 to 50'],
    [
      'a template whose default the command refuses',
      grow('{ n: "{{ annotations.by | default: 0 }}" }'),
      'r.yml: rules.0 (r1): arguments: n: must be an integer',
    ],
    ['an argument the command does not take', grow('{ n: 1, size: 2 }'), 'r.yml: rules.0 (r1): arguments: '],
    [
      'a missing required argument',
      rule('autoscale', '{ max: 4 }', ', bounds: { max_autoscale: 8 }'),
      'r.yml: rules.0 (r1): arguments: needs both max and min',
    ],
    ['a bad literal queue name', rule('add_consumer', '{ queue: "bad queue" }'), 'r.yml: rules.0 (r1): arguments: queue: '],
    [
      'an on_resolved step with text for a number',
      rule('pool_shrink', '{ n: 1 }', ', on_resolved: { action: pool_grow, arguments: { n: "x" } }, bounds: { max_pool_processes: 8 }'),
      'arguments.n: "x" is not a number',
    ],
  ])('refuses %s', (_name, yaml, message) => {
    expect(rulesProblems(yaml).some((p) => p.includes(message))).toBe(true);
  });

  it('accepts templates whose value only an alert can supply, and their well-typed defaults', () => {
    expect(rulesProblems(grow('{ n: "{{ annotations.by }}" }'))).toEqual([]);
    expect(rulesProblems(grow('{ n: "{{ annotations.by | default: 2 }}" }'))).toEqual([]);
    expect(rulesProblems(rule('add_consumer', '{ queue: "{{ labels.queue_name }}" }'))).toEqual([]);
    expect(
      rulesProblems(rule('rate_limit', '{ task_name: "{{ labels.name }}", rate_limit: "{{ annotations.rate | default: 10/m }}" }')),
    ).toEqual([]);
  });

  it('target.allow takes worker globs', () => {
    expect(
      rulesProblems(
        rule('pool_shrink', '{ n: 1 }', '').replace(
          'target: { pattern: "celery@*" }',
          'target: { worker_label: hostname, allow: ["celery@web-*", "celery@api-?"] }',
        ),
      ),
    ).toEqual([]);
    expect(
      rulesProblems(
        rule('pool_shrink', '{ n: 1 }', '').replace(
          'target: { pattern: "celery@*" }',
          'target: { worker_label: hostname, allow: "celery@{web}" }',
        ),
      )[0],
    ).toContain('target.allow');
  });
});

describe('argument templates', () => {
  const a = alert({ queue_name: 'images', n: '3' }, { annotations: { note: 'x' } });
  it('renders labels and annotations, restoring numbers', () => {
    expect(
      render(
        {
          n: '{{ labels.n }}',
          q: 'q-{{ labels.queue_name }}',
          d: '{{ annotations.missing | default: 2 }}',
          s: "{{ annotations.none | default: 'a b' }}",
        },
        a,
      ),
    ).toEqual({ n: 3, q: 'q-images', d: 2, s: 'a b' });
  });
  it('fails on a missing value without a default', () => {
    expect(() => render({ n: '{{ labels.absent }}' }, a)).toThrow(TemplateError);
  });
});

describe('Alertmanager payloads', () => {
  it('parses the captured Alertmanager 0.25 deliveries', () => {
    const lines = readFileSync(path.join(FIXTURES_DIR, 'alertmanager-0.25/webhooks.jsonl'), 'utf8').trim().split('\n');
    const parsed = lines.map((l) => parseNotification((JSON.parse(l) as { body: unknown }).body));
    expect(parsed.map((n) => n.alerts[0]!.status)).toEqual(['firing', 'firing', 'resolved', 'resolved']);
    expect(parsed[0]!.alerts[0]).toMatchObject({
      labels: { alertname: 'CeleryHighQueueLength', queue_name: 'default' },
      fingerprint: 'dbe49797c6922f93',
    });
    expect(parsed[0]!.version).toBe('4');
  });

  it('ignores unknown fields, skips malformed alerts and keeps truncatedAlerts', () => {
    const n = parseNotification({
      version: '4',
      new_field: 1,
      truncatedAlerts: 7,
      alerts: [{ status: 'firing', labels: { a: 'b' }, startsAt: 't', fingerprint: 'x', extra: true }, { status: 'weird' }, 42],
    });
    expect(n.alerts).toHaveLength(1);
    expect(n.malformedAlerts).toBe(2);
    expect(n.truncatedAlerts).toBe(7);
  });

  it.each([[null], [[]], ['x'], [{ alerts: 'no' }], [{}]])('rejects %j', (body) => {
    expect(() => parseNotification(body)).toThrow(PayloadError);
  });
});
