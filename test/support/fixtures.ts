import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

/** Real captures kept in the repository (test/fixtures/captures/README.md says what each is). */
export const FIXTURES_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/captures');

export function readFixture<T = unknown>(relative: string): T {
  const file = path.join(FIXTURES_DIR, relative);
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch (e) {
    throw new Error(`cannot read fixture ${file}: ${(e as Error).message}`, { cause: e });
  }
}

export interface AmqpEventFixture {
  routing_key: string;
  properties: { content_type: string; content_encoding: string; headers: Record<string, unknown> };
  /** The exact payload bytes; a few captures only kept the parsed body, then it is re-serialised. */
  body_raw: string;
  body: unknown;
}

export function amqpEventFixtures(): Record<string, AmqpEventFixture> {
  const examples = readFixture<{ examples: Record<string, AmqpEventFixture> }>('celery-5.2.6/amqp_events.json').examples;
  for (const fx of Object.values(examples)) {
    if (fx.body_raw === '(see body)') fx.body_raw = JSON.stringify(fx.body);
  }
  return examples;
}
