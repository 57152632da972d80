import { randomBytes } from 'node:crypto';
import type { Request } from 'express';
import { Strategy as GitHubStrategy, type Profile } from 'passport-github2';
import type { StateStore } from 'passport-oauth2';
import type { Clock } from '../clock.js';
import type { AuthConfig } from '../config/auth-schema.js';
import { constantTimeEqual } from '../config/secret.js';
import type { Logger } from '../log.js';
import { compareRolesDescending, type Role, type SessionPrincipal } from './principal.js';

type GitHubConfig = NonNullable<AuthConfig['github']>;
type AllowEntry = GitHubConfig['allow'][number];

/** read:org lets the membership endpoints answer for private memberships too; nothing else is asked for. */
export const GITHUB_SCOPE = ['read:org'];
const STATE_TTL_MS = 10 * 60_000;

/**
 * Decides whether a GitHub user may sign in, and with which role. Membership is asked of GitHub's
 * API with the user's own token, and only an "active" membership counts (an invitation pending
 * acceptance does not). E-mail addresses are never looked at: GitHub lets anyone add an unverified
 * one. Entries are tried highest role first, so the first match is the answer. Any API trouble
 * counts as "not a member": GitHub being down must not let anyone in.
 */
export class GitHubAllowList {
  readonly #entries: readonly AllowEntry[];

  constructor(
    private readonly config: GitHubConfig,
    private readonly logger: Logger,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {
    this.#entries = [...config.allow].sort((a, b) => compareRolesDescending(a.role, b.role));
  }

  async roleFor(login: string, accessToken: string, userId?: number): Promise<Role | undefined> {
    const asked = new Map<string, Promise<boolean>>();
    const once = (key: string, ask: () => Promise<boolean>) => {
      if (!asked.has(key)) asked.set(key, ask());
      return asked.get(key)!;
    };
    for (const entry of this.#entries) {
      if (entry.user !== undefined) {
        if (entry.user.toLowerCase() === login.toLowerCase()) return entry.role;
      } else if (entry.user_id !== undefined) {
        if (userId !== undefined && entry.user_id === userId) return entry.role;
      } else if (entry.org !== undefined) {
        const org = entry.org;
        if (await once(`org:${org.toLowerCase()}`, () => this.#isActiveOrgMember(org, accessToken))) return entry.role;
      } else if (entry.team !== undefined) {
        const [org, slug] = entry.team.split('/') as [string, string];
        if (await once(`team:${entry.team.toLowerCase()}`, () => this.#isActiveTeamMember(org, slug, login, accessToken)))
          return entry.role;
      }
    }
    return undefined;
  }

  #isActiveOrgMember(org: string, accessToken: string): Promise<boolean> {
    return this.#activeMembership(`/user/memberships/orgs/${encodeURIComponent(org)}`, accessToken, { org });
  }

  #isActiveTeamMember(org: string, slug: string, login: string, accessToken: string): Promise<boolean> {
    const path = `/orgs/${encodeURIComponent(org)}/teams/${encodeURIComponent(slug)}/memberships/${encodeURIComponent(login)}`;
    return this.#activeMembership(path, accessToken, { team: `${org}/${slug}` });
  }

  async #activeMembership(path: string, accessToken: string, what: Record<string, string>): Promise<boolean> {
    const url = this.config.api_url.replace(/\/+$/, '') + path;
    try {
      const res = await this.fetchImpl(url, {
        headers: {
          Authorization: `Bearer ${accessToken}`,
          Accept: 'application/vnd.github+json',
          'X-GitHub-Api-Version': '2022-11-28',
          'User-Agent': 'celery-autopilot',
        },
        redirect: 'error',
        signal: AbortSignal.timeout(this.config.timeout_seconds * 1000),
      });
      if (res.status === 404 || res.status === 403) {
        // 404: not a member. 403: the org restricts OAuth apps, or the scope was refused.
        await res.body?.cancel();
        if (res.status === 403)
          this.logger.info({ ...what, status: res.status }, 'GitHub refused a membership check (org OAuth app restrictions?)');
        return false;
      }
      if (!res.ok) {
        await res.body?.cancel();
        this.logger.warn({ ...what, status: res.status }, 'GitHub membership check failed');
        return false;
      }
      const body = (await res.json()) as { state?: unknown };
      return body.state === 'active';
    } catch (e) {
      this.logger.warn({ ...what, err: (e as Error).message }, 'GitHub membership check failed');
      return false;
    }
  }
}

/**
 * OAuth `state` kept in the session, single use, expiring after ten minutes and compared in
 * constant time (passport-oauth2's own store compares with `!==` and never expires).
 */
export function sessionStateStore(clock: Clock): StateStore {
  const store = {
    store(req: Request, callback: (err: Error | null, state?: string) => void): void {
      if (!req.session) return callback(new Error('GitHub login needs the auth session middleware'));
      const value = randomBytes(24).toString('base64url');
      req.session.githubState = { value, issuedAtMs: clock.nowMs() };
      callback(null, value);
    },
    verify(req: Request, provided: unknown, callback: (err: Error | null, ok: boolean, info?: { message: string }) => void): void {
      const expected = req.session?.githubState;
      if (req.session) delete req.session.githubState;
      if (!expected || typeof provided !== 'string' || provided === '') {
        return callback(null, false, { message: 'missing OAuth state: start again from /auth/github' });
      }
      if (clock.nowMs() - expected.issuedAtMs > STATE_TTL_MS) return callback(null, false, { message: 'OAuth state expired: start again' });
      if (!constantTimeEqual(expected.value, provided)) return callback(null, false, { message: 'OAuth state mismatch' });
      callback(null, true);
    },
  };
  return store as unknown as StateStore;
}

export function createGitHubStrategy(options: {
  config: GitHubConfig;
  callbackURL: string;
  allowList: GitHubAllowList;
  clock: Clock;
  logger: Logger;
}): GitHubStrategy {
  const { config, allowList, logger } = options;
  return new GitHubStrategy(
    {
      clientID: config.client_id,
      clientSecret: config.client_secret.reveal(),
      callbackURL: options.callbackURL,
      authorizationURL: config.authorize_url,
      tokenURL: config.token_url,
      userProfileURL: config.user_profile_url,
      scope: GITHUB_SCOPE,
      userAgent: 'celery-autopilot',
      store: sessionStateStore(options.clock),
    },
    (
      accessToken: string,
      _refreshToken: string,
      profile: Profile,
      done: (err: Error | null, user?: SessionPrincipal | false, info?: { message: string }) => void,
    ) => {
      const json = (profile as Profile & { _json?: { login?: unknown; id?: unknown } })._json;
      const login = json?.login;
      const userId = typeof json?.id === 'number' ? json.id : undefined;
      if (typeof login !== 'string' || login === '') {
        done(null, false, { message: 'GitHub returned no login' });
        return;
      }
      allowList.roleFor(login, accessToken, userId).then(
        (role) => {
          if (role) {
            logger.info({ github: login, role }, 'GitHub login allowed');
            done(null, { kind: 'github', name: login, role });
          } else {
            logger.info({ github: login }, 'GitHub login refused: not in any allowed user, org or team');
            done(null, false, { message: `GitHub user ${login} is not allowed here` });
          }
        },
        (e: Error) => done(e),
      );
    },
  );
}
