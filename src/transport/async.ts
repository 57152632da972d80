/** The few promise helpers both transports need, defined once. */

export function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/** What `withDeadline` rejects with, so a caller can tell a hang from a broker's refusal. */
export class DeadlineError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DeadlineError';
  }
}

/**
 * Races `promise` against `ms`. The loser is always handled, so a late rejection never becomes an
 * unhandled one; `onLate` receives a value that arrived after the deadline, for cleanup (a channel
 * or connection opened too late must still be closed). `what` names the operation in the error.
 */
export async function withDeadline<T>(promise: Promise<T>, ms: number, what?: string, onLate?: (value: T) => void): Promise<T> {
  let timedOut = false;
  let timer: NodeJS.Timeout | undefined;
  promise.then(
    (value) => {
      if (timedOut) onLate?.(value);
    },
    () => undefined,
  );
  const bound = Math.max(0, ms);
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          timedOut = true;
          reject(new DeadlineError(`${what ? `${what} ` : ''}timed out after ${Math.round(bound)} ms`));
        }, bound);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
