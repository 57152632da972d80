import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { commandForm, postForm, roleFor } from '../../src/console/actions.js';
import { html } from '../../src/console/html.js';
import type { ConsoleContext } from '../../src/console/layout.js';
import { withUrlPrefix } from '../../src/http/url-prefix.js';
import type { Role } from '../../src/auth/index.js';

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
    expect([roleFor('pool_grow'), roleFor('revoke'), roleFor('revoke', { terminate: true }), roleFor('shutdown'), roleFor('stats')]).toEqual([
      'operator',
      'operator',
      'admin',
      'admin',
      'viewer',
    ]);
  });

  it.each([
    ['viewer', 0, 0],
    ['operator', 1, 0],
    ['admin', 1, 1],
  ] as const)('a %s gets %i grow form(s) and %i shutdown form(s)', (role, grow, shutdown) => {
    const ctx = ctxFor(role);
    const forms = [commandForm(ctx, 'w@h', { command: 'pool_grow', label: 'Grow' }), commandForm(ctx, 'w@h', { command: 'shutdown', label: 'Shut down' })].map((f) => f.text);
    expect([forms[0]!.includes('data-command="pool_grow"') ? 1 : 0, forms[1]!.includes('data-command="shutdown"') ? 1 : 0]).toEqual([grow, shutdown]);
  });

  it('a worker name and fixed arguments land in attributes escaped', () => {
    const text = commandForm(ctxFor('operator'), 'a"b@h', { command: 'rate_limit', label: 'Set', args: { task_name: 'x"<y' } }).text;
    expect(text).toContain('data-worker="a&quot;b@h"');
    expect(text).toContain('data-args="{&quot;task_name&quot;:&quot;x\\&quot;&lt;y&quot;}"');
    expect(postForm(ctxFor('viewer'), 'operator', '/api/task/revoke/x', 'Revoke', { name: 'revoke' }).text).toBe('');
  });
});
