import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import type { OidcProviderConfig } from '../../config/oidc-schema.js';
import { Secret } from '../../config/secret.js';

/** What an OpenID provider entry needs from files: its client secret, and the CA its issuer is checked with. */
export interface OidcMaterial {
  readonly clientSecret: Secret;
  /** PEM; undefined: the system's CAs. */
  readonly ca: string | undefined;
}

export class OidcMaterialError extends Error {}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * Reads every provider's secret file and CA file once: the one loader the service and
 * `--check-config` share, so both refuse the same things. Only paths appear in errors.
 */
export function loadOidcMaterial(providers: readonly OidcProviderConfig[]): Map<string, OidcMaterial> {
  const out = new Map<string, OidcMaterial>();
  for (const p of providers) {
    const key = `auth.oidc[${p.id}]`;
    let clientSecret = p.client_secret;
    if (p.client_secret_file !== undefined) {
      // Only the line break an editor or `echo` leaves is dropped.
      const text = read(`${key}.client_secret_file`, p.client_secret_file).replace(/[\r\n]+$/, '');
      if (text === '') throw new OidcMaterialError(`${key}.client_secret_file ${p.client_secret_file} is empty`);
      clientSecret = new Secret(text);
    }
    let ca: string | undefined;
    if (p.ca_file !== undefined) {
      ca = read(`${key}.ca_file`, p.ca_file);
      const certificates = ca.match(PEM_CERTIFICATE) ?? [];
      if (certificates.length === 0) throw new OidcMaterialError(`${key}.ca_file ${p.ca_file} holds no PEM certificate`);
      for (const pem of certificates) {
        try {
          new X509Certificate(pem);
        } catch (e) {
          throw new OidcMaterialError(`${key}.ca_file ${p.ca_file}: not a valid certificate (${(e as Error).message})`);
        }
      }
    }
    // The schema requires exactly one of client_secret and client_secret_file.
    out.set(p.id, { clientSecret: clientSecret!, ca });
  }
  return out;
}

function read(what: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new OidcMaterialError(`${what}: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}
