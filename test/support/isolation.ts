import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A short random suffix so suites running side by side never share broker names. */
export function uniqueId(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/**
 * Creates a RabbitMQ vhost for one suite (guest gets full rights) and returns its amqp:// URL.
 * Every suite gets its own vhost so broadcasts and event streams never cross suites.
 */
export async function createVhost(name: string, port = 5672): Promise<{ vhost: string; url: string; remove: () => Promise<void> }> {
  await run('rabbitmqctl', ['-q', 'add_vhost', name]).catch((e: unknown) => {
    if (!String((e as { stderr?: string }).stderr ?? e).includes('already exists')) throw e;
  });
  await run('rabbitmqctl', ['-q', 'set_permissions', '-p', name, 'guest', '.*', '.*', '.*']);
  return {
    vhost: name,
    url: `amqp://guest:guest@127.0.0.1:${port}/${encodeURIComponent(name)}`,
    remove: async () => {
      await run('rabbitmqctl', ['-q', 'delete_vhost', name]).catch(() => undefined);
    },
  };
}

/**
 * Redis isolation: a unique kombu global_keyprefix (every key and channel carries it, §E of docs/wire-protocol.md)
 * on the given db. PUB/SUB ignores the db number, so the prefix is what isolates.
 */
export function redisIsolation(suite: string, db = 0): { db: number; keyprefix: string; url: string } {
  return { db, keyprefix: `${uniqueId(suite)}:`, url: `redis://127.0.0.1:6379/${db}` };
}
