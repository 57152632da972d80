import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * JSON lines on stderr. Secrets are never passed to the logger as plain strings (they are Secret
 * objects that serialise as "<secret>"); the redact list is a second line of defence.
 */
export function createLogger(level: string): Logger {
  return pino(
    {
      level,
      base: { service: 'celery-autopilot' },
      redact: { paths: ['password', '*.password', 'token', '*.token', 'authorization', '*.authorization'], censor: '<secret>' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    pino.destination({ fd: 2, sync: false }),
  );
}

/** A logger that drops everything, for unit tests and benchmarks. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
