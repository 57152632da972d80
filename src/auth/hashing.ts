import { createHash, randomBytes, scrypt, scryptSync, timingSafeEqual } from 'node:crypto';

/**
 * Password and token hashes as the config stores them.
 *
 * Passwords: `scrypt$N$r$p$salt$hash` (salt and hash base64url, no padding), Node's built-in
 * scrypt, so no native dependency. The parameters travel with the hash, so they can be raised
 * later without invalidating old entries. scripts/hash-secret.mjs writes the same format.
 *
 * Tokens: generated with 256 bits of entropy, so a plain SHA-256 is enough (nothing to
 * brute-force, unlike a password); compared in constant time.
 */

export interface ScryptHash {
  readonly N: number;
  readonly r: number;
  readonly p: number;
  readonly salt: Buffer;
  readonly hash: Buffer;
}

/** 2^15 × 8 × 128 bytes = 32 MiB per verification: costly to brute-force, cheap enough per login. */
export const SCRYPT_DEFAULTS = { N: 32_768, r: 8, p: 1 } as const;
const SALT_BYTES = 16;
const KEY_BYTES = 32;
/** Bounds keep one verification's memory and CPU finite even for a hand-edited hash. */
const MAX_SCRYPT_MEMORY = 256 * 1024 * 1024;

const FORMAT = /^scrypt\$(\d{1,8})\$(\d{1,3})\$(\d{1,3})\$([A-Za-z0-9_-]{11,172})\$([A-Za-z0-9_-]{22,172})$/;

export type ParseResult = { ok: true; value: ScryptHash } | { ok: false; error: string };

export function parseScryptHash(text: string): ParseResult {
  const m = FORMAT.exec(text);
  if (!m) return { ok: false, error: 'not a scrypt$N$r$p$salt$hash string (generate one with: node scripts/hash-secret.mjs password)' };
  const [N, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (N < 2 || N > 2 ** 20 || (N & (N - 1)) !== 0) return { ok: false, error: 'scrypt N must be a power of two between 2 and 2^20' };
  if (r < 1 || r > 32 || p < 1 || p > 16) return { ok: false, error: 'scrypt r must be 1..32 and p 1..16' };
  if (128 * N * r > MAX_SCRYPT_MEMORY) return { ok: false, error: 'scrypt N × r needs more than 256 MiB' };
  const salt = Buffer.from(m[4]!, 'base64url');
  const hash = Buffer.from(m[5]!, 'base64url');
  if (salt.length < 8 || hash.length < 16) return { ok: false, error: 'scrypt salt or hash too short' };
  return { ok: true, value: { N, r, p, salt, hash } };
}

function derive(password: string, salt: Buffer, keylen: number, params: { N: number; r: number; p: number }): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const maxmem = 128 * params.N * params.r * 2 + 1024 * 1024;
    scrypt(password.normalize('NFC'), salt, keylen, { N: params.N, r: params.r, p: params.p, maxmem }, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

export async function hashPassword(password: string, params: { N: number; r: number; p: number } = SCRYPT_DEFAULTS): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, KEY_BYTES, params);
  return `scrypt$${params.N}$${params.r}$${params.p}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

/**
 * A plaintext password from the config (Flower's --basic-auth migration), hashed once at load
 * with the defaults, so it is verified exactly like a stored hash and an unknown user's decoy:
 * comparing it directly would answer faster and tell which usernames exist.
 */
export function hashPlaintextAtLoad(password: string): ScryptHash {
  const salt = randomBytes(SALT_BYTES);
  const p = SCRYPT_DEFAULTS;
  const hash = scryptSync(password.normalize('NFC'), salt, KEY_BYTES, { ...p, maxmem: 128 * p.N * p.r * 2 + 1024 * 1024 });
  return { ...p, salt, hash };
}

export async function verifyPassword(password: string, stored: ScryptHash): Promise<boolean> {
  const key = await derive(password, stored.salt, stored.hash.length, stored);
  return timingSafeEqual(key, stored.hash);
}

/** A hash with the default parameters, verified against when a username is unknown (see credentials.ts). */
let decoy: ScryptHash | undefined;
export function decoyHash(): ScryptHash {
  decoy ??= { ...SCRYPT_DEFAULTS, salt: randomBytes(SALT_BYTES), hash: randomBytes(KEY_BYTES) };
  return decoy;
}

export function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** Constant-time equality of two digests of the same length (a length mismatch is simply false). */
export function digestsEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** A new API token: 256 random bits with a recognisable prefix, so secret scanners can spot leaks. */
export function generateToken(): string {
  return `cap_${randomBytes(32).toString('base64url')}`;
}
