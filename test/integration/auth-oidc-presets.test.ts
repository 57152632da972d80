import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccessPolicy, type Claims, type Decision } from '../../src/auth/oidc/access-policy.js';
import { loadConfig } from '../../src/config/load.js';
import { makeCertificates, type TestCertificates } from '../support/tls-endpoints.js';

/**
 * The README's provider presets are configurations, tested as such: every ```yaml block that
 * starts with "# preset: <name>" is read out of the README itself (so the documentation cannot
 * drift from what is tested), run through the real `--check-config`, and its access policy is
 * fed the claims that provider sends.
 */

const run = promisify(execFile);
const MAIN = ['--import', 'tsx', path.resolve('src/main.ts')];
const README = readFileSync(path.resolve('README.md'), 'utf8');
const presets = new Map([...README.matchAll(/```yaml\n# preset: ([a-z]+)\n([\s\S]*?)```/g)].map((m) => [m[1]!, m[2]!]));

let certs: TestCertificates;
let dir: string;

beforeAll(async () => {
  certs = await makeCertificates();
  dir = mkdtempSync(path.join(tmpdir(), 'cap-presets-'));
});

afterAll(async () => {
  await certs?.remove();
});

/** The preset as an operator would deploy it: its secret file and CA file exist (here, under a temporary directory). */
function deployed(name: string): string {
  const yaml = presets.get(name)!.replaceAll('/run/secrets/', `${dir}/`).replaceAll('/etc/ssl/certs/example-private-ca.pem', certs.caFile);
  for (const m of yaml.matchAll(/client_secret_file: (\S+)/g)) writeFileSync(m[1]!, `${name}-client-secret-value\n`);
  const file = path.join(dir, `${name}.yaml`);
  writeFileSync(file, yaml);
  return file;
}

function policy(name: string): AccessPolicy {
  const { config } = loadConfig({ argv: ['--config', deployed(name)], env: {} });
  return new AccessPolicy(config!.auth.oidc[0]!);
}

const verified = (email: string, more: Record<string, unknown> = {}): Claims => ({
  sub: 'subject-1',
  email,
  email_verified: true,
  ...more,
});
const outcome = (d: Decision) => (d.allowed ? { role: d.role, name: d.name } : { refused: d.log.why });

it('the README has the five presets', () => {
  expect([...presets.keys()]).toEqual(['google', 'okta', 'gitlab', 'entra', 'keycloak']);
});

describe.each(['google', 'okta', 'gitlab', 'entra', 'keycloak'])('preset %s', (name) => {
  it('--check-config accepts it (secret and CA files read, no issuer contacted)', async () => {
    const { stdout, stderr } = await run(process.execPath, [...MAIN, '--check-config', '--config', deployed(name)], { timeout: 60_000 });
    expect(stderr).toBe('');
    expect(stdout).toMatch(/^configuration OK/);
  });
});

it('--check-config refuses a preset whose secret file is missing, naming it, with exit status 2', async () => {
  const file = path.join(dir, 'okta-missing.yaml');
  writeFileSync(file, presets.get('okta')!.replaceAll('/run/secrets/', `${dir}/missing/`));
  const failed = await run(process.execPath, [...MAIN, '--check-config', '--config', file], { timeout: 60_000 }).then(
    () => ({ code: 0, stderr: '' }),
    (e: { code: number; stderr: string }) => e,
  );
  expect(failed.code).toBe(2);
  expect(failed.stderr).toContain(`auth.oidc[okta].client_secret_file: cannot read ${dir}/missing/okta-client-secret: ENOENT`);
});

describe('what each preset decides for the claims its provider sends', () => {
  it('Google: hd must be the domain; named addresses get their role, the rest of the domain viewer', () => {
    const p = policy('google');
    expect(outcome(p.decide(verified('alice@example.com', { hd: 'example.com' })))).toEqual({
      role: 'admin',
      name: 'google/alice@example.com',
    });
    expect(outcome(p.decide(verified('dave@example.com', { hd: 'example.com' })))).toEqual({
      role: 'viewer',
      name: 'google/dave@example.com',
    });
    // A personal account has no hd claim, whatever its address says.
    expect(outcome(p.decide(verified('alice@example.com')))).toEqual({ refused: 'required_claim' });
  });

  it('Okta: the groups claim', () => {
    const p = policy('okta');
    expect(outcome(p.decide(verified('bob@example.com', { groups: ['Everyone', 'sre'] })))).toEqual({
      role: 'operator',
      name: 'okta/bob@example.com',
    });
    expect(outcome(p.decide(verified('eve@example.com', { groups: ['Everyone'] })))).toEqual({ refused: 'no_role' });
    expect(outcome(p.decide({ sub: 's', email: 'bob@example.com', email_verified: false, groups: ['sre'] }))).toEqual({
      refused: 'email_not_verified',
    });
  });

  it('GitLab: full group paths from userinfo', () => {
    const p = policy('gitlab');
    expect(outcome(p.decide(verified('ann@example.com', { groups: ['platform', 'platform/sre'] })))).toEqual({
      role: 'operator',
      name: 'gitlab/ann@example.com',
    });
    expect(outcome(p.decide(verified('ann@example.com', { groups: ['platform-old'] })))).toEqual({ refused: 'no_role' });
  });

  it('Entra ID: group object IDs, no email_verified, named by preferred_username; the group overage refused as such', () => {
    const p = policy('entra');
    const entra = { sub: 's', tid: '72f988bf-86f1-41af-91ab-2d7cd011db47', preferred_username: 'alice@contoso.com' };
    expect(outcome(p.decide({ ...entra, groups: ['9b1f4c2e-3d5a-4e6f-8a7b-0c1d2e3f4a5b'] }))).toEqual({
      role: 'admin',
      name: 'entra/alice@contoso.com',
    });
    const overage = p.decide({
      ...entra,
      _claim_names: { groups: 'src1' },
      _claim_sources: { src1: { endpoint: 'https://graph.microsoft.com/…' } },
    });
    expect(overage).toMatchObject({ allowed: false, log: { why: 'no_role', overage: true } });
  });

  it('Keycloak: realm roles, a nested claim', () => {
    const p = policy('keycloak');
    const claims = verified('kim@example.com', { realm_access: { roles: ['offline_access', 'celery-operator'] } });
    expect(outcome(p.decide(claims))).toEqual({ role: 'operator', name: 'keycloak/kim@example.com' });
    expect(outcome(p.decide(verified('kim@example.com', { realm_access: { roles: ['offline_access'] } })))).toEqual({ refused: 'no_role' });
  });
});
