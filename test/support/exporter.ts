import { loadConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/log.js';
import { Service } from '../../src/service.js';
import { parseMetrics, type Sample } from './prom.js';

/** An exporter running in the test process on an ephemeral port, driven by real brokers. */
export interface RunningExporter {
  service: Service;
  url: string;
  scrape(): Promise<Sample[]>;
  get(path: string): Promise<Response>;
  stop(): Promise<void>;
}

export async function startExporter(argv: string[]): Promise<RunningExporter> {
  const { config } = loadConfig({ argv: ['--listen-address', '127.0.0.1', '--port', '0', ...argv], env: {} });
  const service = new Service(config!, { logger: silentLogger() });
  service.start();
  const port = await service.listen();
  const url = `http://127.0.0.1:${port}`;
  return {
    service,
    url,
    get: (path) => fetch(url + path),
    scrape: async () => {
      const res = await fetch(`${url}/metrics`);
      if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
      return parseMetrics(await res.text());
    },
    stop: () => service.stop(),
  };
}

/**
 * Polls `probe` until it returns something other than undefined, or fails after `timeoutMs`
 * with the last observation, so a failing wait says what it saw.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 30_000,
  everyMs = 250,
  observed?: () => string | Promise<string>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      const saw = observed ? `; observed: ${await Promise.resolve(observed()).catch((e: unknown) => `(unavailable: ${String(e)})`)}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}${saw}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
