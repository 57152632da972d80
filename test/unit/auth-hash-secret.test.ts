import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseScryptHash, verifyPassword } from '../../src/auth/hashing.js';
import { authSchema } from '../../src/config/auth-schema.js';

/** scripts/hash-secret.mjs must write exactly what src/auth accepts. */
function run(args: string[], stdin: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, ['scripts/hash-secret.mjs', ...args], { timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
    child.stdin!.end(stdin);
  });
}

describe('scripts/hash-secret.mjs', () => {
  it('password: prints a scrypt hash that verifies and that the config accepts', async () => {
    const { code, stdout } = await run(['password'], 'pässwörd with spaces\n');
    expect(code).toBe(0);
    const hash = stdout.trim();
    const parsed = parseScryptHash(hash);
    if (!parsed.ok) throw new Error(parsed.error);
    expect(await verifyPassword('pässwörd with spaces', parsed.value)).toBe(true);
    expect(authSchema.safeParse({ users: [{ username: 'a', password_hash: hash, role: 'viewer' }] }).success).toBe(true);
  });

  it('password: refuses an empty one', async () => {
    const { code, stdout } = await run(['password'], '\n');
    expect(code).toBe(1);
    expect(stdout).toBe('');
  });

  it('token: makes a new token and prints its sha256 as the config wants it', async () => {
    const { code, stdout } = await run(['token'], '');
    expect(code).toBe(0);
    const m = /^token: (cap_[A-Za-z0-9_-]{43})\nsha256: ([0-9a-f]{64})\n$/.exec(stdout);
    expect(m).not.toBeNull();
    expect(createHash('sha256').update(m![1]!).digest('hex')).toBe(m![2]);
    expect(authSchema.safeParse({ tokens: [{ name: 't', sha256: m![2], role: 'viewer' }] }).success).toBe(true);
  });

  it('token --stdin: hashes an existing token, and refuses a short one', async () => {
    const token = 'cap_existing-token-from-a-vault-0123456789';
    expect((await run(['token', '--stdin'], `${token}\n`)).stdout).toBe(`sha256: ${createHash('sha256').update(token).digest('hex')}\n`);
    expect((await run(['token', '--stdin'], 'short\n')).code).toBe(1);
  });

  it('takes no secret on the command line', async () => {
    const { code, stderr } = await run(['password', 'hunter2'], '');
    expect(code).toBe(2);
    expect(stderr).toContain('usage:');
  });
});
