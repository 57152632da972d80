import type { RequestHandler, Response } from 'express';

/** Task lists one caller may have in flight at once (/api/tasks and /ui/tasks together); 429 beyond. */
export const TASK_LISTS_PER_CALLER = 2;

/**
 * Task lists (/api/tasks, /ui/tasks) are the heaviest reads: each scans the store and sends up to
 * a page of payloads. One caller may run at most `perCaller` of them at once, so a script
 * firing requests in parallel waits its turn (429, Retry-After) instead of holding many
 * large answers in memory at the same time; other callers are not affected. Mounted after the
 * route's role check, so the caller is known; callers are told apart by principal.
 */
export function heavyReadLimit(perCaller: number): RequestHandler {
  const inFlight = new Map<string, number>();
  return (req, res, next) => {
    const p = req.principal;
    const caller = p ? `${p.kind}:${p.name}` : `ip:${req.ip ?? ''}`;
    const running = inFlight.get(caller) ?? 0;
    if (running >= perCaller) {
      res
        .status(429)
        .set('Retry-After', '1')
        .json({ error: `at most ${perCaller} task lists at a time per caller: retry when one has been answered` });
      return;
    }
    inFlight.set(caller, running + 1);
    let done = false;
    const release = () => {
      if (done) return;
      done = true;
      const left = (inFlight.get(caller) ?? 1) - 1;
      if (left > 0) inFlight.set(caller, left);
      else inFlight.delete(caller);
    };
    res.once('finish', release);
    res.once('close', release);
    next();
  };
}

/**
 * Sends a JSON object written piece by piece, honouring back-pressure: each piece is handed to
 * the socket only when it has room, so one large answer is never built whole in memory and a
 * slow or vanished client costs a buffer, not the whole answer. `entries` are `"key":value` texts.
 */
export async function streamJsonObject(res: Response, entries: Iterable<string>): Promise<void> {
  res.status(200).type('json');
  let chunk = '{';
  let first = true;
  for (const entry of entries) {
    chunk += first ? entry : `,${entry}`;
    first = false;
    if (chunk.length < 64 * 1024) continue;
    if (!res.write(chunk) && !(await roomOrGone(res))) return;
    chunk = '';
  }
  res.end(`${chunk}}`);
}

/** Resolves true when the socket can take more, false when the client has gone. */
function roomOrGone(res: Response): Promise<boolean> {
  if (res.destroyed) return Promise.resolve(false);
  return new Promise((resolve) => {
    const drained = () => settle(true);
    const closed = () => settle(false);
    const settle = (room: boolean) => {
      res.off('drain', drained);
      res.off('close', closed);
      resolve(room);
    };
    res.once('drain', drained);
    res.once('close', closed);
  });
}
