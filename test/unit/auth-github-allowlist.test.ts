import type { Request } from 'express';
import { describe, expect, it } from 'vitest';
import { GitHubAllowList, sessionStateStore } from '../../src/auth/github.js';
import { ManualClock } from '../../src/clock.js';
import { authSchema, type AuthConfigInput } from '../../src/config/auth-schema.js';
import { silentLogger } from '../../src/log.js';

/**
 * The allow-list decision with GitHub's answers scripted (the HTTP round trips themselves are
 * exercised against the stand-in server in test/integration/auth-github.test.ts).
 */

type Answer = { status: number; body?: unknown } | 'network-error';

function allowList(allow: NonNullable<AuthConfigInput['github']>['allow'], answers: Record<string, Answer>) {
  const config = authSchema.parse({
    public_url: 'https://autopilot.example',
    github: { client_id: 'c', client_secret: 's', api_url: 'https://api.example/', allow },
  });
  const asked: string[] = [];
  const fetchStub = (async (input: string | URL | Request, init?: RequestInit) => {
    const url = String(input);
    asked.push(url);
    expect(new Headers(init?.headers).get('authorization')).toBe('Bearer user-token');
    const answer = answers[url.replace('https://api.example', '')] ?? { status: 404, body: { message: 'Not Found' } };
    if (answer === 'network-error') throw new TypeError('fetch failed');
    return new Response(JSON.stringify(answer.body ?? {}), { status: answer.status });
  }) as typeof fetch;
  return { list: new GitHubAllowList(config.github!, silentLogger(), fetchStub), asked };
}

const active = { status: 200, body: { state: 'active' } };
const pending = { status: 200, body: { state: 'pending' } };

describe('GitHub allow-list', () => {
  it.each([
    ['a listed login, whatever its case', [{ user: 'OctoCat', role: 'operator' }], {}, 'octocat', 'operator'],
    ['an active org member', [{ org: 'acme', role: 'viewer' }], { '/user/memberships/orgs/acme': active }, 'bob', 'viewer'],
    ['an active team member', [{ team: 'acme/sre', role: 'admin' }], { '/orgs/acme/teams/sre/memberships/bob': active }, 'bob', 'admin'],
    ['a pending org invitation', [{ org: 'acme', role: 'viewer' }], { '/user/memberships/orgs/acme': pending }, 'bob', undefined],
    [
      'a pending team invitation',
      [{ team: 'acme/sre', role: 'admin' }],
      { '/orgs/acme/teams/sre/memberships/bob': pending },
      'bob',
      undefined,
    ],
    ['not a member (404)', [{ org: 'acme', role: 'viewer' }], {}, 'bob', undefined],
    [
      'org refusing OAuth apps (403)',
      [{ org: 'acme', role: 'viewer' }],
      { '/user/memberships/orgs/acme': { status: 403 } },
      'bob',
      undefined,
    ],
    ['GitHub failing (502)', [{ org: 'acme', role: 'viewer' }], { '/user/memberships/orgs/acme': { status: 502 } }, 'bob', undefined],
    ['GitHub unreachable', [{ org: 'acme', role: 'viewer' }], { '/user/memberships/orgs/acme': 'network-error' }, 'bob', undefined],
    [
      'a 200 without state',
      [{ org: 'acme', role: 'viewer' }],
      { '/user/memberships/orgs/acme': { status: 200, body: {} } },
      'bob',
      undefined,
    ],
    ['a login that only looks like a listed one', [{ user: 'octocat', role: 'admin' }], {}, 'octocat-evil', undefined],
  ] as const)('%s → %s', async (_scenario, allow, answers, login, role) => {
    const { list } = allowList([...allow], answers as Record<string, Answer>);
    expect(await list.roleFor(login, 'user-token')).toBe(role);
  });

  it('matches a numeric user id, not the login that account has today', async () => {
    const { list } = allowList([{ user_id: 42, role: 'operator' }], {});
    expect(await list.roleFor('any-new-login', 'user-token', 42)).toBe('operator');
    expect(await list.roleFor('any-new-login', 'user-token', 43)).toBeUndefined();
    expect(await list.roleFor('any-new-login', 'user-token')).toBeUndefined();
  });

  it('the highest role wins, and lower entries are not asked once a higher one matched', async () => {
    const { list, asked } = allowList(
      [
        { org: 'acme', role: 'viewer' },
        { team: 'acme/sre', role: 'operator' },
        { org: 'acme-admins', role: 'admin' },
      ],
      { '/user/memberships/orgs/acme': active, '/orgs/acme/teams/sre/memberships/bob': active },
    );
    expect(await list.roleFor('bob', 'user-token')).toBe('operator');
    expect(asked).toEqual([
      'https://api.example/user/memberships/orgs/acme-admins',
      'https://api.example/orgs/acme/teams/sre/memberships/bob',
    ]);
  });

  it('asks about each org once, however many entries name it', async () => {
    const { list, asked } = allowList(
      [
        { org: 'acme', role: 'admin' },
        { org: 'ACME', role: 'viewer' },
      ],
      {},
    );
    expect(await list.roleFor('bob', 'user-token')).toBeUndefined();
    expect(asked).toHaveLength(1);
  });
});

describe('OAuth state store', () => {
  type Verify = (req: Request, state: unknown, cb: (err: Error | null, ok: boolean, info?: { message: string }) => void) => void;
  type Store = (req: Request, cb: (err: Error | null, state?: string) => void) => void;

  function roundTrip(clock: ManualClock) {
    const store = sessionStateStore(clock) as unknown as { store: Store; verify: Verify };
    const req = { session: {} } as unknown as Request;
    let issued = '';
    store.store(req, (_e, s) => (issued = s!));
    const verify = (state: unknown) =>
      new Promise<{ ok: boolean; message: string | undefined }>((resolve) =>
        store.verify(req, state, (_e, ok, info) => resolve({ ok, message: info?.message })),
      );
    return { issued, verify };
  }

  it.each([
    ['the issued state', (s: string) => s, 0, { ok: true, message: undefined }],
    ['a different state', () => 'forged', 0, { ok: false, message: 'OAuth state mismatch' }],
    ['no state', () => undefined, 0, { ok: false, message: 'missing OAuth state: start again from /auth/github' }],
    ['a repeated query parameter', (s: string) => [s, s], 0, { ok: false, message: 'missing OAuth state: start again from /auth/github' }],
    ['the issued state after 11 minutes', (s: string) => s, 11 * 60_000, { ok: false, message: 'OAuth state expired: start again' }],
  ])('%s', async (_scenario, sent, waitMs, expected) => {
    const clock = new ManualClock();
    const { issued, verify } = roundTrip(clock);
    expect(issued).toMatch(/^[A-Za-z0-9_-]{32}$/);
    clock.advance(waitMs);
    expect(await verify(sent(issued))).toEqual(expected);
  });

  it('is single use', async () => {
    const { issued, verify } = roundTrip(new ManualClock());
    expect((await verify(issued)).ok).toBe(true);
    expect((await verify(issued)).ok).toBe(false);
  });
});
