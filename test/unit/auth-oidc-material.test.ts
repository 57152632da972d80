import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOidcMaterial } from '../../src/auth/oidc/material.js';
import { oidcProviderSchema } from '../../src/config/oidc-schema.js';
import { makeCertificates, type TestCertificates } from '../support/tls-endpoints.js';

/** The client secret and the issuer's CA from files: read once, refused with the path and the reason, never shown. */

const dir = mkdtempSync(path.join(tmpdir(), 'cap-oidc-material-'));
const file = (name: string, text: string) => {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
};
const provider = (extra: Record<string, unknown>) =>
  oidcProviderSchema.parse({
    id: 'kc',
    name: 'Keycloak',
    issuer_url: 'https://sso.example.com/realms/ops',
    client_id: 'c',
    allow_emails: ['a@x.com'],
    default_role: 'viewer',
    ...extra,
  });

// A real CA certificate, made by openssl as the suites make theirs.
let ca: string;
let certs: TestCertificates;
beforeAll(async () => {
  certs = await makeCertificates();
  ca = readFileSync(certs.caFile, 'utf8');
});
afterAll(() => certs?.remove());

describe('loadOidcMaterial', () => {
  it('reads the secret file (dropping the trailing line break) as a Secret, and the CA bundle', () => {
    const m = loadOidcMaterial([provider({ client_secret_file: file('secret', 's3cret-value\n'), ca_file: file('ca.pem', ca) })]).get(
      'kc',
    )!;
    expect(m.clientSecret.reveal()).toBe('s3cret-value');
    expect(inspect(m)).not.toContain('s3cret-value');
    expect(m.ca).toBe(ca);
  });

  it('an inline secret needs no file', () => {
    expect(
      loadOidcMaterial([provider({ client_secret: 'inline-secret' })])
        .get('kc')!
        .clientSecret.reveal(),
    ).toBe('inline-secret');
  });

  it.each([
    [
      'a missing secret file',
      { client_secret_file: path.join(dir, 'nope') },
      `auth.oidc[kc].client_secret_file: cannot read ${path.join(dir, 'nope')}: ENOENT`,
    ],
    [
      'an empty secret file',
      { client_secret_file: file('empty', '\n') },
      `auth.oidc[kc].client_secret_file ${path.join(dir, 'empty')} is empty`,
    ],
    [
      'a CA file with no certificate',
      { client_secret: 'x', ca_file: file('not-pem', 'hello\n') },
      `auth.oidc[kc].ca_file ${path.join(dir, 'not-pem')} holds no PEM certificate`,
    ],
    [
      'a CA file with a broken certificate',
      { client_secret: 'x', ca_file: file('broken.pem', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n') },
      `auth.oidc[kc].ca_file ${path.join(dir, 'broken.pem')}: not a valid certificate`,
    ],
  ])('refuses %s, naming the path', (_what, extra, message) => {
    expect(() => loadOidcMaterial([provider(extra)])).toThrow(message);
  });
});
