import { describe, expect, it, vi } from 'vitest';

// Counts scrypt verifications without changing them: the point is which path each user takes.
vi.mock('../../src/auth/hashing.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../src/auth/hashing.js')>();
  return { ...original, verifyPassword: vi.fn(original.verifyPassword) };
});

const hashing = await import('../../src/auth/hashing.js');
const { CredentialVerifier } = await import('../../src/auth/credentials.js');
const { ManualClock } = await import('../../src/clock.js');
const { authSchema } = await import('../../src/config/auth-schema.js');

describe('CredentialVerifier', () => {
  it('verifies a plaintext config password by scrypt, like a stored hash and an unknown user (timing must not tell which names exist)', async () => {
    const config = authSchema.parse({
      users: [
        { username: 'flower', password: { plain: 'flower-plain-pass-9' }, role: 'operator' },
        { username: 'alice', password_hash: await hashing.hashPassword('alice-Correct-Horse-1'), role: 'admin' },
      ],
    });
    const verifier = new CredentialVerifier(config, new ManualClock());
    const verify = vi.mocked(hashing.verifyPassword);
    verify.mockClear();
    expect(await verifier.verifyPassword('flower', 'wrong-password')).toBeUndefined();
    expect(await verifier.verifyPassword('flower', 'flower-plain-pass-9')).toMatchObject({ name: 'flower', role: 'operator' });
    expect(await verifier.verifyPassword('alice', 'wrong-password')).toBeUndefined();
    expect(await verifier.verifyPassword('nobody', 'wrong-password')).toBeUndefined();
    expect(verify).toHaveBeenCalledTimes(4);
    // Each call hashed with the same parameters, so each costs the same.
    const params = verify.mock.calls.map(([, h]) => `${h.N}/${h.r}/${h.p}/${h.hash.length}`);
    expect(new Set(params).size).toBe(1);
  });
});
