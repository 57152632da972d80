import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseScryptHash, verifyPassword } from '../../src/auth/hashing.js';
import { authSchema } from '../../src/config/auth-schema.js';
import { loadConfig } from '../../src/config/load.js';

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

  it('user: prints one name:role:hash line that --auth-users and CELERY_AUTOPILOT_AUTH_USERS take', async () => {
    const { code, stdout } = await run(['user', 'alice', 'operator'], 'correct horse\n');
    expect(code).toBe(0);
    const line = stdout.trim();
    expect(line).toMatch(/^alice:operator:scrypt\$32768\$8\$1\$/);
    expect(line).not.toContain('correct horse');
    const users = loadConfig({ argv: [], env: { CELERY_AUTOPILOT_AUTH_USERS: line } }).config!.auth.users;
    expect(users).toHaveLength(1);
    expect(users[0]).toMatchObject({ username: 'alice', role: 'operator' });
    const parsed = parseScryptHash(users[0]!.password_hash!.reveal());
    if (!parsed.ok) throw new Error(parsed.error);
    expect(await verifyPassword('correct horse', parsed.value)).toBe(true);
  });

  it('user: refuses a missing or unknown role and a name the line form cannot carry', async () => {
    for (const args of [
      ['user', 'alice'],
      ['user', 'alice', 'root'],
      ['user', 'a:b', 'admin'],
      ['user', 'a,b', 'admin'],
    ]) {
      const { code, stdout, stderr } = await run(args, 'pw\n');
      expect(code, args.join(' ')).toBe(2);
      expect(stdout).toBe('');
      expect(stderr).toContain('usage:');
    }
  });

  it('takes no secret on the command line', async () => {
    const { code, stderr } = await run(['password', 'hunter2'], '');
    expect(code).toBe(2);
    expect(stderr).toContain('usage:');
  });
});
