import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CredentialVerifier, parseAuthorization } from '../../src/auth/credentials.js';
import { digestsEqual, generateToken, hashPassword, parseScryptHash, sha256, verifyPassword } from '../../src/auth/hashing.js';
import { ManualClock } from '../../src/clock.js';
import { Secret, constantTimeEqual } from '../../src/config/secret.js';

// Cheap parameters keep the unit tests fast; the format and code path are the same.
const FAST = { N: 1024, r: 8, p: 1 };

describe('scrypt password hashes', () => {
  it('round-trips and refuses a wrong password', async () => {
    const stored = await hashPassword('correct horse', FAST);
    expect(stored).toMatch(/^scrypt\$1024\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
    const parsed = parseScryptHash(stored);
    if (!parsed.ok) throw new Error(parsed.error);
    expect(await verifyPassword('correct horse', parsed.value)).toBe(true);
    expect(await verifyPassword('correct horsf', parsed.value)).toBe(false);
    expect(await verifyPassword('', parsed.value)).toBe(false);
  });

  it('salts every hash', async () => {
    expect(await hashPassword('same', FAST)).not.toBe(await hashPassword('same', FAST));
  });

  it('treats canonically equivalent Unicode spellings as the same password', async () => {
    const parsed = parseScryptHash(await hashPassword('caf\u00e9', FAST));
    if (!parsed.ok) throw new Error(parsed.error);
    expect(await verifyPassword('cafe\u0301', parsed.value)).toBe(true);
  });

  it('uses N=2^15, r=8, p=1 by default', async () => {
    expect(await hashPassword('x')).toMatch(/^scrypt\$32768\$8\$1\$/);
  });

  it.each([
    ['plaintext', 'hunter2', 'not a scrypt$N$r$p$salt$hash string (generate one with: node scripts/hash-secret.mjs password)'],
    [
      'bcrypt',
      '$2b$12$abcdefghijklmnopqrstuuM7z6pQ9c0a1b2c3d4e5f6g7h8i9j0kl',
      'not a scrypt$N$r$p$salt$hash string (generate one with: node scripts/hash-secret.mjs password)',
    ],
    [
      'N not a power of two',
      'scrypt$1000$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
      'scrypt N must be a power of two between 2 and 2^20',
    ],
    [
      'N too large',
      'scrypt$2097152$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
      'scrypt N must be a power of two between 2 and 2^20',
    ],
    [
      'r out of range',
      'scrypt$1024$0$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
      'scrypt r must be 1..32 and p 1..16',
    ],
    [
      'too much memory',
      'scrypt$1048576$32$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
      'scrypt N × r needs more than 256 MiB',
    ],
  ])('refuses %s with a clear message', (_scenario, text, message) => {
    expect(parseScryptHash(text)).toEqual({ ok: false, error: message });
  });
});

describe('constant-time comparison helpers', () => {
  it.each([
    ['equal strings', 'abc', 'abc', true],
    ['different strings of equal length', 'abc', 'abd', false],
    ['a prefix (different lengths do not throw)', 'abc', 'abcd', false],
    ['empty against non-empty', '', 'x', false],
  ])('constantTimeEqual: %s', (_scenario, a, b, equal) => {
    expect(constantTimeEqual(a, b)).toBe(equal);
    expect(new Secret(a).equals(b)).toBe(equal);
  });

  it('digestsEqual compares digests and answers false (not throwing) on a length mismatch', () => {
    expect(digestsEqual(sha256('t'), sha256('t'))).toBe(true);
    expect(digestsEqual(sha256('t'), sha256('u'))).toBe(false);
    expect(digestsEqual(sha256('t'), Buffer.alloc(16))).toBe(false);
  });

  it('generated tokens are prefixed, 256-bit and unique', () => {
    const a = generateToken();
    expect(a).toMatch(/^cap_[A-Za-z0-9_-]{43}$/);
    expect(generateToken()).not.toBe(a);
  });
});

describe('Authorization header parsing', () => {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  it.each([
    ['Basic', `Basic ${b64('alice:pa:ss')}`, { scheme: 'basic', username: 'alice', password: 'pa:ss' }],
    ['lower-case basic', `basic ${b64('alice:x')}`, { scheme: 'basic', username: 'alice', password: 'x' }],
    ['empty password', `Basic ${b64('alice:')}`, { scheme: 'basic', username: 'alice', password: '' }],
    ['UTF-8 password', `Basic ${b64('alice:pässwörd')}`, { scheme: 'basic', username: 'alice', password: 'pässwörd' }],
    ['Bearer', 'Bearer cap_abc', { scheme: 'bearer', token: 'cap_abc' }],
    ['no colon', `Basic ${b64('alice')}`, { scheme: 'unsupported' }],
    ['empty username', `Basic ${b64(':x')}`, { scheme: 'unsupported' }],
    ['not base64', 'Basic ***', { scheme: 'unsupported' }],
    ['other scheme', 'Digest abc', { scheme: 'unsupported' }],
    ['scheme only', 'Bearer', { scheme: 'unsupported' }],
    ['two values', 'Bearer a b', { scheme: 'unsupported' }],
  ])('%s', (_scenario, header, expected) => {
    expect(parseAuthorization(header)).toEqual(expected);
  });
});

describe('CredentialVerifier', () => {
  const hex = (s: string) => createHash('sha256').update(s).digest('hex');

  async function verifier() {
    return new CredentialVerifier(
      {
        users: [
          { username: 'alice', password_hash: new Secret(await hashPassword('alice-pw', FAST)), role: 'admin' },
          { username: 'flower', password: { plain: new Secret('flower-pw') }, role: 'operator' },
        ],
        tokens: [
          { name: 'one', sha256: hex('token-one'), role: 'viewer' },
          { name: 'two', sha256: hex('token-two'), role: 'operator' },
        ],
      },
      new ManualClock(),
    );
  }

  it.each([
    ['hashed user, right password', 'alice', 'alice-pw', { kind: 'basic', name: 'alice', role: 'admin' }],
    ['hashed user, wrong password', 'alice', 'flower-pw', undefined],
    ['plain user, right password', 'flower', 'flower-pw', { kind: 'basic', name: 'flower', role: 'operator' }],
    ['plain user, wrong password', 'flower', 'flower-pwx', undefined],
    ['unknown user', 'bob', 'alice-pw', undefined],
    ['usernames are case-sensitive', 'Alice', 'alice-pw', undefined],
  ])('password: %s', async (_scenario, user, password, expected) => {
    expect(await (await verifier()).verifyPassword(user, password)).toEqual(expected);
  });

  it('a cached success still needs the same password', async () => {
    const v = await verifier();
    expect(await v.verifyPassword('alice', 'alice-pw')).toBeDefined();
    expect(await v.verifyPassword('alice', 'alice-pw')).toBeDefined();
    expect(await v.verifyPassword('alice', 'alice-pwx')).toBeUndefined();
  });

  it.each([
    ['first token', 'token-one', { kind: 'token', name: 'one', role: 'viewer' }],
    ['second token', 'token-two', { kind: 'token', name: 'two', role: 'operator' }],
    ['unknown token', 'token-three', undefined],
    ['a token hash sent as the token', hex('token-one'), undefined],
  ])('token: %s', async (_scenario, token, expected) => {
    expect((await verifier()).verifyToken(token)).toEqual(expected);
  });
});
