import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { waitFor } from './exporter.js';

/** The real entry point, run from source the way `node dist/main.js` runs the build. */
const MAIN = ['--import', 'tsx', path.resolve('src/main.ts')];

/**
 * The service in a process of its own, for tests of what could block its event loop: a test in
 * the same process would hang with it, while a request to a child that hangs fails on the
 * request's own bound. Configured through a YAML file; stopped by its PID.
 */
export interface ServiceProcess {
  url: string;
  pid: number;
  logs(): string;
  /** A request bounded by `timeoutMs`: a service that does not answer fails the test with a message. */
  fetch(urlPath: string, init?: RequestInit & { timeoutMs?: number }): Promise<Response>;
  stop(): Promise<void>;
}

export async function startServiceProcess(
  config: Record<string, unknown>,
  argv: string[] = [],
  env: Record<string, string> = {},
): Promise<ServiceProcess> {
  const dir = mkdtempSync(path.join(tmpdir(), 'cap-proc-'));
  const file = path.join(dir, 'config.yaml');
  writeFileSync(file, stringify({ audit: { file: '' }, ...config }));
  const child = spawn(
    process.execPath,
    [...MAIN, '--config', file, '--listen-address', '127.0.0.1', '--port', '0', '--log-level', 'info', ...argv],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } },
  );
  let log = '';
  child.stderr.on('data', (d: Buffer) => (log += d.toString()));
  const exited = once(child, 'exit');
  // Best effort for a test process that ends without afterAll: the child must not outlive it.
  const orphanGuard = () => child.kill('SIGKILL');
  process.once('exit', orphanGuard);
  const stop = async () => {
    process.off('exit', orphanGuard);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const port = await waitFor(
      'the service to listen',
      () => {
        if (child.exitCode !== null) throw new Error(`exited with ${child.exitCode}`);
        const line = log.split('\n').find((l) => l.includes('celery-autopilot listening'));
        return line ? (JSON.parse(line) as { port: number }).port : undefined;
      },
      60_000,
      100,
      () => log.slice(-2000),
    );
    const url = `http://127.0.0.1:${port}`;
    return {
      url,
      pid: child.pid!,
      logs: () => log,
      fetch: (urlPath, init = {}) => {
        const { timeoutMs = 60_000, ...rest } = init;
        return fetch(url + urlPath, { ...rest, signal: AbortSignal.timeout(timeoutMs) }).catch((e: Error) => {
          throw new Error(`${rest.method ?? 'GET'} ${urlPath} got no answer within ${timeoutMs} ms (${e.name}): the service is stuck`);
        });
      },
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
