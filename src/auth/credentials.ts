import { createHmac, randomBytes } from 'node:crypto';
import type { Clock } from '../clock.js';
import type { AuthConfig } from '../config/auth-schema.js';
import { decoyHash, digestsEqual, hashPlaintextAtLoad, parseScryptHash, sha256, verifyPassword, type ScryptHash } from './hashing.js';
import type { Role, SessionPrincipal } from './principal.js';

/** What an Authorization header carries, before anything is verified. */
export type PresentedCredentials =
  { scheme: 'basic'; username: string; password: string } | { scheme: 'bearer'; token: string } | { scheme: 'unsupported' };

/**
 * The one parser of Authorization headers, for the API and the Alertmanager receiver alike:
 * `Basic base64(user:pass)` and `Bearer token` (schemes case-insensitive, RFC 7235). Only the
 * scheme and the ASCII spaces RFC 7235 allows around it are stripped: the credential is the
 * exact bytes sent, visible ASCII only. (JS `trim()` or `\s` would also eat U+00A0 and friends,
 * which let `Bearer \xa0` match an empty secret.)
 */
export function parseAuthorization(header: string): PresentedCredentials {
  const m = /^([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*) +([\x21-\x7e]+) *$/.exec(header);
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
  readonly #users = new Map<string, { role: Role; hash: ScryptHash }>();
  readonly #tokens: ConfiguredToken[];
  readonly #cacheKey = randomBytes(32);
  readonly #verified = new Map<string, number>();

  constructor(
    config: Pick<AuthConfig, 'users' | 'tokens'>,
    private readonly clock: Clock,
  ) {
    for (const u of config.users) {
      let hash: ScryptHash;
      if (u.password_hash) {
        const parsed = parseScryptHash(u.password_hash.reveal());
        // The schema already refused malformed hashes; this guards a config built by hand.
        if (!parsed.ok) throw new Error(`auth.users: ${u.username}: ${parsed.error}`);
        hash = parsed.value;
      } else if (u.password) {
        hash = hashPlaintextAtLoad(u.password.plain.reveal());
      } else {
        throw new Error(`auth.users: ${u.username}: no password`);
      }
      this.#users.set(u.username, { role: u.role, hash });
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

  /** The principal when this username and password were verified in the last few minutes: no hashing, so no gate. */
  cached(username: string, password: string): SessionPrincipal | undefined {
    const user = this.#users.get(username);
    if (!user) return undefined;
    const cachedUntil = this.#verified.get(this.#cacheId(username, password));
    return cachedUntil !== undefined && cachedUntil > this.clock.nowMs() ? { kind: 'basic', name: username, role: user.role } : undefined;
  }

  /** The principal for a right username and password, else undefined. Always one scrypt (see password-gate.ts for who may ask). */
  async verifyPassword(username: string, password: string): Promise<SessionPrincipal | undefined> {
    const cached = this.cached(username, password);
    if (cached) return cached;
    const user = this.#users.get(username);
    // An unknown user costs the same scrypt time as a real one, so timing does not tell which names exist.
    const ok = await verifyPassword(password, user?.hash ?? decoyHash());
    if (!user || !ok) return undefined;
    const cacheId = this.#cacheId(username, password);
    this.#verified.delete(cacheId);
    this.#verified.set(cacheId, this.clock.nowMs() + CACHE_TTL_MS);
    while (this.#verified.size > CACHE_MAX) this.#verified.delete(this.#verified.keys().next().value!);
    return { kind: 'basic', name: username, role: user.role };
  }

  #cacheId(username: string, password: string): string {
    return createHmac('sha256', this.#cacheKey).update(username).update('\0').update(password).digest('base64url');
  }

  /** The principal for a configured token, else undefined. Every configured digest is compared, in constant time. */
  verifyToken(token: string): SessionPrincipal | undefined {
    const presented = sha256(token);
    let match: ConfiguredToken | undefined;
    for (const t of this.#tokens) if (digestsEqual(t.digest, presented) && !match) match = t;
    return match ? { kind: 'token', name: match.name, role: match.role } : undefined;
  }
}
