import type { ErrorKind } from './replies.js';

/** One worker's result of a control command (client.ts), in one place so shrink.ts can build them too. */
export type WorkerStatus = 'ok' | 'error' | 'no_reply' | 'sent' | 'dry_run';

export interface WorkerResult {
  readonly worker: string;
  readonly status: WorkerStatus;
  /** The worker's answer as received (also for errors: the raw `{"error": ...}`). */
  readonly reply?: unknown;
  readonly message?: string;
  readonly kind?: ErrorKind;
  /** Only present when confirmation was asked for. */
  readonly confirmed?: boolean | null;
  /** What confirmation looked for and why it ended, e.g. "observed 3 pool processes (was 2)". */
  readonly confirmation?: string;
  /** pool_shrink: live pool processes before, and the count the shrink sent leads to. */
  readonly before?: number;
  readonly after?: number;
}

/**
 * Whether a worker may have changed after this result: an error reply counts as much as an ok
 * (billiard's shrink removes processes before it answers "All processes busy!"), so both are
 * followed by a fresh inspection.
 */
export const answeredCommand = (r: WorkerResult): boolean => r.status === 'ok' || r.status === 'error';
