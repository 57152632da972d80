import type { TaskHistory } from '../tasks/task-history.js';
import { html, type Html } from './html.js';

const STEPS = [
  ['sent', 'PENDING (sent)'],
  ['received', 'RECEIVED'],
  ['started', 'STARTED'],
  ['retried', 'RETRY'],
  ['succeeded', 'SUCCESS'],
  ['failed', 'FAILURE'],
  ['revoked', 'REVOKED'],
  ['rejected', 'REJECTED'],
] as const;

export interface Step {
  label: string;
  at: number;
}

export interface Attempt {
  title: string;
  steps: Step[];
  /** The exception (and traceback) this attempt ended with, when it is the one the record holds. */
  holdsException: boolean;
}

/**
 * The record's states split into attempts. A retry re-sends the same task id, and a record keeps
 * one timestamp per state, the latest: so whatever happened up to the (latest) retry belongs to
 * the attempt that retried, and whatever came after it to the attempt now running or finished.
 * Within an attempt, steps keep the state machine's order: task-sent is stamped on the client's
 * clock and a fast worker's RECEIVED can be earlier than it.
 */
export function attemptsOf(t: Readonly<TaskHistory>): Attempt[] {
  const steps = STEPS.filter(([field]) => t[field] !== null).map(([field, label]) => ({ label, at: t[field]! }));
  const retries = t.retries ?? 0;
  const retriedAt = t.retried;
  if (retriedAt === null) return [{ title: retries > 0 ? `attempt ${retries + 1}` : '', steps, holdsException: true }];
  const before = steps.filter((s) => s.at <= retriedAt);
  const after = steps.filter((s) => s.at > retriedAt);
  if (after.length === 0) return [{ title: `attempt ${retries + 1}, retried`, steps: before, holdsException: true }];
  const earlier = retries > 1 ? `attempts 1–${retries}, retried (the last retry's times)` : 'attempt 1, retried';
  // After a retry, the exception fields hold the retry's exception until a failure replaces it.
  const failedLater = t.failed !== null && t.failed > retriedAt;
  return [
    { title: earlier, steps: before, holdsException: !failedLater },
    { title: `attempt ${retries + 1}`, steps: after, holdsException: failedLater },
  ];
}

/** "+0.020 s", or "−0.020 s" when the step carries an earlier time than the one above it (another clock). */
export function delta(seconds: number): string {
  const abs = Math.abs(seconds).toFixed(3);
  return seconds < 0 ? `−${abs} s` : `+${abs} s`;
}

/** The timeline table: a heading row per attempt when there was a retry, signed deltas within and across attempts. */
export function timeline(t: Readonly<TaskHistory>): Html {
  let previous: number | undefined;
  const groups = attemptsOf(t).map((a) => {
    const rows = a.steps.map((s) => {
      const d = previous === undefined ? undefined : s.at - previous;
      previous = s.at;
      return html`<tr><td><span class="state state-${s.label.split(' ')[0]}">${s.label}</span></td><td class="mono">${Number.isFinite(s.at) ? new Date(s.at * 1000).toISOString() : ''}</td>
<td class="num"${d !== undefined && d < 0 ? html` title="earlier than the step above: client and worker clocks differ"` : ''}>${d === undefined ? '' : delta(d)}</td></tr>`;
    });
    return html`<tbody>${a.title ? html`<tr class="attempt-head"><th colspan="3">${a.title}</th></tr>` : ''}${rows}</tbody>`;
  });
  return html`<table id="timeline" class="compact"><thead><tr><th>state</th><th>at (UTC, sender's clock)</th><th class="num">after previous</th></tr></thead>${groups}</table>`;
}
