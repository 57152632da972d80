import { createHmac, randomBytes } from 'node:crypto';
import type { Clock } from '../clock.js';
import type { AuthConfig } from '../config/auth-schema.js';
import type { Secret } from '../config/secret.js';
import { decoyHash, digestsEqual, parseScryptHash, sha256, verifyPassword, type ScryptHash } from './hashing.js';
import type { Role, SessionPrincipal } from './principal.js';

/** What an Authorization header carries, before anything is verified. */
export type PresentedCredentials =
  | { scheme: 'basic'; username: string; password: string }
  | { scheme: 'bearer'; token: string }
  | { scheme: 'unsupported' };

/** Parses `Basic base64(user:pass)` and `Bearer token` (schemes are case-insensitive, RFC 7235). */
export function parseAuthorization(header: string): PresentedCredentials {
  const m = /^([A-Za-z]+) +(\S+) *$/.exec(header);
  if (!m) return { scheme: 'unsupported' };
  const scheme = m[1]!.toLowerCase();
  const value = m[2]!;
  if (scheme === 'bearer') return { scheme: 'bearer', token: value };
  if (scheme !== 'basic' || !/^[A-Za-z0-9+/]+={0,2}$/.test(value)) return { scheme: 'unsupported' };
  const decoded = Buffer.from(value, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return { scheme: 'unsupported' };
  return { scheme: 'basic', username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

interface ConfiguredToken {
  name: string;
  digest: Buffer;
  role: Role;
}

type PasswordCheck = { kind: 'hash'; hash: ScryptHash } | { kind: 'plain'; secret: Secret };

const CACHE_TTL_MS = 5 * 60_000;
const CACHE_MAX = 1000;

/**
 * Verifies basic-auth users and bearer tokens from the config.
 *
 * Basic auth sends the password on every request; Prometheus scrapes and scripts would pay a
 * 32 MiB scrypt each time. Successful checks are remembered for a few minutes under an HMAC of
 * (user, password) with a per-process key, so the cache holds nothing reusable.
 */
export class CredentialVerifier {
  readonly #users = new Map<string, { role: Role; check: PasswordCheck }>();
  readonly #tokens: ConfiguredToken[];
  readonly #cacheKey = randomBytes(32);
  readonly #verified = new Map<string, number>();

  constructor(
    config: Pick<AuthConfig, 'users' | 'tokens'>,
    private readonly clock: Clock,
  ) {
    for (const u of config.users) {
      let check: PasswordCheck;
      if (u.password_hash) {
        const parsed = parseScryptHash(u.password_hash.reveal());
        // The schema already refused malformed hashes; this guards a config built by hand.
        if (!parsed.ok) throw new Error(`auth.users: ${u.username}: ${parsed.error}`);
        check = { kind: 'hash', hash: parsed.value };
      } else if (u.password) {
        check = { kind: 'plain', secret: u.password.plain };
      } else {
        throw new Error(`auth.users: ${u.username}: no password`);
      }
      this.#users.set(u.username, { role: u.role, check });
    }
    this.#tokens = config.tokens.map((t) => ({ name: t.name, digest: Buffer.from(t.sha256, 'hex'), role: t.role }));
  }

  hasUser(username: string): boolean {
    return this.#users.has(username);
  }

  get userCount(): number {
    return this.#users.size;
  }

  get tokenCount(): number {
    return this.#tokens.length;
  }

  /** The principal for a right username and password, else undefined. */
  async verifyPassword(username: string, password: string): Promise<SessionPrincipal | undefined> {
    const user = this.#users.get(username);
    if (!user) {
      // Spend the same scrypt time as for a real user, so timing does not tell which names exist.
      await verifyPassword(password, decoyHash());
      return undefined;
    }
    const principal: SessionPrincipal = { kind: 'basic', name: username, role: user.role };
    if (user.check.kind === 'plain') return user.check.secret.equals(password) ? principal : undefined;

    const cacheId = createHmac('sha256', this.#cacheKey).update(username).update('\0').update(password).digest('base64url');
    const now = this.clock.nowMs();
    const cachedUntil = this.#verified.get(cacheId);
    if (cachedUntil !== undefined && cachedUntil > now) return principal;
    if (!(await verifyPassword(password, user.check.hash))) return undefined;
    this.#verified.delete(cacheId);
    this.#verified.set(cacheId, now + CACHE_TTL_MS);
    while (this.#verified.size > CACHE_MAX) this.#verified.delete(this.#verified.keys().next().value!);
    return principal;
  }

  /** The principal for a configured token, else undefined. Every configured digest is compared, in constant time. */
  verifyToken(token: string): SessionPrincipal | undefined {
    const presented = sha256(token);
    let match: ConfiguredToken | undefined;
    for (const t of this.#tokens) if (digestsEqual(t.digest, presented) && !match) match = t;
    return match ? { kind: 'token', name: match.name, role: match.role } : undefined;
  }
}
