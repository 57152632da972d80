import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import type { Clock } from '../../src/clock.js';
import { loadConfig } from '../../src/config/load.js';
import { Service } from '../../src/service.js';
import { capturingLogger } from './fake-github.js';

/**
 * The real service in-process for the security suites: config written as a YAML file and loaded
 * the way main.ts loads it, an optional injected clock, and every log line kept.
 */
export interface SecureService {
  service: Service;
  url: string;
  port: number;
  logs: ReturnType<typeof capturingLogger>;
  stop(): Promise<void>;
}

export async function startSecureService(
  config: Record<string, unknown>,
  options: { clock?: Clock; port?: number } = {},
): Promise<SecureService> {
  const dir = mkdtempSync(path.join(tmpdir(), 'cap-sec-'));
  const file = path.join(dir, 'config.yaml');
  writeFileSync(file, stringify({ audit: { file: '' }, ...config }));
  const { config: parsed } = loadConfig({
    argv: ['--listen-address', '127.0.0.1', '--port', String(options.port ?? 0), '--config', file],
    env: {},
  });
  const logs = capturingLogger();
  const service = new Service(parsed!, { logger: logs.logger, ...(options.clock ? { clock: options.clock } : {}) });
  service.start();
  const port = await service.listen();
  return { service, url: `http://127.0.0.1:${port}`, port, logs, stop: () => service.stop() };
}

/** A port nobody listens on right now, for a service whose public_url must be known before it starts. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/**
 * One HTTP request from a chosen loopback address (so per-client limits can be told apart),
 * with headers exactly as given: fetch would refuse some of the hostile ones (Host, latin-1).
 */
export function send(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string; localAddress?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: init.method ?? 'GET', headers: init.headers ?? {}, localAddress: init.localAddress ?? '127.0.0.1' },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(init.body);
  });
}

export const basicAuth = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
