import { readFileSync } from 'node:fs';

/**
 * TLS to a managed broker (`amqps://`, `rediss://`): what the config names as files, read once
 * at start into the options Node's `tls.connect` takes. Only file paths are ever in the config
 * and in messages; key material never reaches a log.
 */

/** The config's `broker_tls` group, as parsed. */
export interface BrokerTlsConfig {
  readonly ca_file?: string | undefined;
  readonly cert_file?: string | undefined;
  readonly key_file?: string | undefined;
  readonly server_name?: string | undefined;
  readonly verify: boolean;
}

/** The subset of `tls.ConnectionOptions` both broker clients pass through unchanged. */
export interface BrokerTlsOptions {
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
  readonly servername?: string;
  readonly rejectUnauthorized: boolean;
}

export class BrokerTlsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BrokerTlsError';
  }
}

/** Reads the files the config names; a missing or unreadable file is a clear error naming the key. */
export function loadTlsOptions(config: BrokerTlsConfig, readFile: (path: string) => Buffer = readFileSync): BrokerTlsOptions {
  const read = (key: string, path: string | undefined): Buffer | undefined => {
    if (path === undefined) return undefined;
    try {
      return readFile(path);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      throw new BrokerTlsError(`broker_tls.${key}: cannot read ${path}${typeof code === 'string' ? ` (${code})` : ''}`);
    }
  };
  const ca = read('ca_file', config.ca_file);
  const cert = read('cert_file', config.cert_file);
  const key = read('key_file', config.key_file);
  return {
    ...(ca ? { ca } : {}),
    ...(cert ? { cert } : {}),
    ...(key ? { key } : {}),
    ...(config.server_name !== undefined ? { servername: config.server_name } : {}),
    rejectUnauthorized: config.verify,
  };
}

/** OpenSSL's verification failures, as Node names them: the broker's certificate was not trusted. */
const VERIFY_CODES = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/**
 * A certificate the broker presented and we refused says what to check, rather than only
 * OpenSSL's words; any other error is returned unchanged.
 */
export function explainTlsError(error: Error): Error {
  const code = (error as { code?: unknown }).code;
  if (typeof code !== 'string' || !VERIFY_CODES.has(code)) return error;
  const hint =
    code === 'ERR_TLS_CERT_ALTNAME_INVALID'
      ? 'the certificate is not for this host name: check broker_tls.server_name'
      : 'the certificate is not signed by a trusted CA: check broker_tls.ca_file';
  const explained = new BrokerTlsError(`TLS verification of the broker failed (${code}: ${error.message}); ${hint}`);
  (explained as { code?: string }).code = code;
  return explained;
}
