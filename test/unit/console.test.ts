import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { commandForm, postForm, roleFor } from '../../src/console/actions.js';
import { html } from '../../src/console/html.js';
import type { ConsoleContext } from '../../src/console/layout.js';
import { withUrlPrefix } from '../../src/http/url-prefix.js';
import type { Role } from '../../src/auth/index.js';
import { systemClock } from '../../src/clock.js';
import { workerPage, type Inspection } from '../../src/console/worker.js';
import { emptyPoolFlag } from '../../src/console/workers.js';
import type { WorkerResult } from '../../src/control/client.js';
import { WorkerRegistry } from '../../src/state/workers.js';
import { readFixture } from '../support/fixtures.js';

const prefixOf = (argv: string[]) => loadConfig({ argv, env: {} }).config!.url_prefix;

function ctxFor(role: Role, prefix = ''): ConsoleContext {
  const rank = { viewer: 0, operator: 1, admin: 2 };
  return {
    principal: { kind: 'basic', name: 'p', role, via: 'session' },
    csrfToken: 't',
    prefix,
    can: (need) => rank[role] >= rank[need],
    href: (path) => prefix + path,
  };
}

describe('url_prefix', () => {
  it.each([
    ['', ''],
    ['/', ''],
    ['flower', '/flower'],
    ['/flower/', '/flower'],
    ['ops/celery/', '/ops/celery'],
    ['/a.b~c_d-e', '/a.b~c_d-e'],
  ])('%j is served as %j', (given, served) => {
    expect(prefixOf(['--url-prefix', given])).toBe(served);
  });

  it.each(['//flower', '/flo wer', '/../x', 'a//b', '/a?b', '/<x>'])('refuses %j with the rule in words', (given) => {
    let problems: string[] = [];
    try {
      loadConfig({ argv: ['--url-prefix', given], env: {} });
    } catch (e) {
      if (e instanceof ConfigError) problems = e.problems;
    }
    expect(problems).toEqual(['url_prefix: a URL path such as "flower" or "/ops/celery": letters, digits and ._~- between slashes']);
  });

  it.each([
    ['/login?next=%2Fui', '/p/login?next=%2Fui'],
    ['/p/ui', '/p/ui'],
    ['/p', '/p'],
    ['/pp/ui', '/p/pp/ui'],
    ['https://github.com/login/oauth', 'https://github.com/login/oauth'],
    ['//evil.example/', '//evil.example/'],
  ])('a redirect to %j goes to %j under /p', (location, expected) => {
    expect(withUrlPrefix('/p', location)).toBe(expected);
  });
});

describe('console HTML', () => {
  it('escapes every interpolated value, arrays included, but not HTML built by the same template', () => {
    const name = `"><img src=x onerror=alert(1)>'&`;
    const out = html`<td title="${name}">${[name, html`<b>${name}</b>`]}${null}${undefined}${false}${0}</td>`.text;
    expect(out).toBe(
      '<td title="&quot;&gt;&lt;img src=x onerror=alert(1)&gt;&#39;&amp;">&quot;&gt;&lt;img src=x onerror=alert(1)&gt;&#39;&amp;<b>&quot;&gt;&lt;img src=x onerror=alert(1)&gt;&#39;&amp;</b>0</td>',
    );
  });

  it('objects become escaped JSON, never "[object Object]"', () => {
    expect(html`${{ a: '<b>' }}`.text).toBe('{&quot;a&quot;:&quot;&lt;b&gt;&quot;}');
  });
});

describe('console action forms', () => {
  it('roles come from the COMMANDS table: revoke is operator, with terminate admin; shutdown admin', () => {
    expect([
      roleFor('pool_grow'),
      roleFor('revoke'),
      roleFor('revoke', { terminate: true }),
      roleFor('shutdown'),
      roleFor('stats'),
    ]).toEqual(['operator', 'operator', 'admin', 'admin', 'viewer']);
  });

  it.each([
    ['viewer', 0, 0],
    ['operator', 1, 0],
    ['admin', 1, 1],
  ] as const)('a %s gets %i grow form(s) and %i shutdown form(s)', (role, grow, shutdown) => {
    const ctx = ctxFor(role);
    const forms = [
      commandForm(ctx, 'w@h', { command: 'pool_grow', label: 'Grow' }),
      commandForm(ctx, 'w@h', { command: 'shutdown', label: 'Shut down' }),
    ].map((f) => f.text);
    expect([forms[0]!.includes('data-command="pool_grow"') ? 1 : 0, forms[1]!.includes('data-command="shutdown"') ? 1 : 0]).toEqual([
      grow,
      shutdown,
    ]);
  });

  it('a worker name and fixed arguments land in attributes escaped', () => {
    const text = commandForm(ctxFor('operator'), 'a"b@h', { command: 'rate_limit', label: 'Set', args: { task_name: 'x"<y' } }).text;
    expect(text).toContain('data-worker="a&quot;b@h"');
    expect(text).toContain('data-args="{&quot;task_name&quot;:&quot;x\\&quot;&lt;y&quot;}"');
    expect(postForm(ctxFor('viewer'), 'operator', '/api/task/revoke/x', 'Revoke', { name: 'revoke' }).text).toBe('');
  });
});

describe('worker page from captured Celery 5.2.6 replies', () => {
  const captured = readFixture<{ configs: Record<string, Record<string, { reply: Array<Record<string, unknown>> }>> }>(
    'celery-5.2.6/control_replies_by_pool.json',
  ).configs;
  const config = captured['prefork_autoscale_amqp (-E --autoscale=4,1)']!;
  const ok = (key: string): WorkerResult => ({ worker: 'auto1@vm', status: 'ok', reply: config[key]!.reply[0]!['auto1@vm'] });
  const registry = new WorkerRegistry(systemClock, { purgeAfterSeconds: 600 });

  it('shows the pool with its autoscaler, the queues and the revoked ids; a viewer gets no form', () => {
    const inspection: Inspection = {
      stats: ok('stats_before'),
      active_queues: ok('active_queues'),
      registered: { worker: 'auto1@vm', status: 'no_reply' },
      active: ok('active'),
      reserved: ok('reserved'),
      scheduled: ok('scheduled'),
      revoked: ok('revoked'),
    };
    const page = workerPage(ctxFor('viewer'), { name: 'auto1@vm', record: registry.get('auto1@vm'), alive: true, inspection, nowMs: 0 });
    expect(page).toContain('<dd class="processes">1</dd>');
    expect(page).toContain('min 1, max 4, 1 now');
    expect(page).toContain('<tr data-queue="celery">');
    expect(page).toContain('href="/ui/tasks/aaaaaaaa-0000-0000-0000-000000000001"');
    expect(page).toContain('no reply within the timeout');
    expect(page).not.toContain('<form class="action"');
  });

  it('flags a worker that is up with 0 pool processes, on its page and in the workers list', () => {
    const stats = ok('stats_before');
    const emptied: WorkerResult = { ...stats, reply: { ...(stats.reply as object), pool: { processes: [] } } };
    const page = workerPage(ctxFor('viewer'), {
      name: 'auto1@vm',
      record: undefined,
      alive: true,
      inspection: { stats: emptied },
      nowMs: 0,
    });
    expect(page).toContain('class="state state-pool-empty"');
    const healthy = workerPage(ctxFor('viewer'), { name: 'auto1@vm', record: undefined, alive: true, inspection: { stats }, nowMs: 0 });
    expect(healthy).not.toContain('state-pool-empty');
    expect(emptyPoolFlag(true, 0).text).toContain('pool empty');
    expect(emptyPoolFlag(false, 0).text).toBe('');
    expect(emptyPoolFlag(true, undefined).text).toBe('');
  });
});
