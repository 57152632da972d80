import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { hashPassword } from '../../src/auth/index.js';
import { launchBrowser, type HeadlessBrowser } from './browser.js';
import { startExporter, type RunningExporter } from './exporter.js';
import { isolatedBroker, type BrokerUnderTest } from './exporter-scenarios.js';

/** The console's three kinds of people: they sign in through the login form with these. */
export const CONSOLE_USERS = {
  olga: { password: 'olga-Operator-Pass-7', role: 'operator' },
  vera: { password: 'vera-Viewer-Pass-3', role: 'viewer' },
  ada: { password: 'ada-Admin-Pass-9', role: 'admin' },
} as const;
export type ConsoleUser = keyof typeof CONSOLE_USERS;

export interface ConsoleRig {
  broker: BrokerUnderTest;
  exporter: RunningExporter;
  browser: HeadlessBrowser;
  passwords: Record<ConsoleUser, string>;
  stop(): Promise<void>;
}

/**
 * An isolated broker namespace, the service on it with the console's users (plus any config
 * given) and a headless Chromium. Workers are the suite's own: it knows what it needs.
 */
export async function startConsoleRig(
  kind: 'amqp' | 'redis',
  suite: string,
  config: Record<string, unknown> = {},
  /** Extra flags, after the config (the last of a repeated flag wins): e.g. the broker through a proxy. */
  argv: string[] | ((broker: BrokerUnderTest) => string[]) = [],
): Promise<ConsoleRig> {
  const broker = await isolatedBroker(kind, suite);
  const configDir = await mkdtemp(path.join(tmpdir(), `${suite}-`));
  const users = await Promise.all(
    Object.entries(CONSOLE_USERS).map(async ([username, u]) => ({ username, password_hash: await hashPassword(u.password), role: u.role })),
  );
  const configFile = path.join(configDir, 'config.yaml');
  const { auth, ...rest } = config as { auth?: Record<string, unknown> };
  await writeFile(configFile, stringify({ auth: { users, ...auth }, audit: { file: '' }, ...rest }));
  const [exporter, browser] = await Promise.all([
    startExporter([...broker.exporterArgs, '--config', configFile, ...(typeof argv === 'function' ? argv(broker) : argv)]),
    launchBrowser(),
  ]);
  const passwords = Object.fromEntries(Object.entries(CONSOLE_USERS).map(([u, { password }]) => [u, password])) as Record<
    ConsoleUser,
    string
  >;
  return {
    broker,
    exporter,
    browser,
    passwords,
    stop: async () => {
      await browser.close();
      await exporter.stop();
      await broker.cleanup();
      await rm(configDir, { recursive: true, force: true });
    },
  };
}
