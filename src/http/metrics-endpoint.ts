import type { RequestHandler, Response } from 'express';

/** What /metrics serves: the exposition as a stream of chunks (see Service.metricsChunks). */
export interface MetricsSource {
  readonly contentType: string;
  chunks(): AsyncGenerator<string>;
}

/**
 * /metrics streamed with backpressure, so a large cluster's exposition never sits in memory
 * whole. Waiting for `drain` also ends when the client goes away (`close`) or the socket fails:
 * a scrape aborted mid-stream used to leave this handler and its generator pending forever.
 */
export function metricsEndpoint(source: MetricsSource): RequestHandler {
  return async (_req, res, next) => {
    const chunks = source.chunks();
    try {
      res.set('Content-Type', source.contentType);
      for (;;) {
        const { value, done } = await chunks.next();
        if (done) break;
        if (!res.write(value) && !(await writable(res))) return;
      }
      res.end();
    } catch (e) {
      if (res.headersSent) res.destroy(e as Error);
      else next(e);
    } finally {
      // Lets the generator run its own cleanup whichever way the scrape ended.
      await chunks.return(undefined);
    }
  };
}

/** true on `drain`; false once the response can take no more (client gone, socket error). */
function writable(res: Response): Promise<boolean> {
  if (res.destroyed || res.writableEnded) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (ok: boolean) => () => {
      res.off('drain', onDrain);
      res.off('close', onClose);
      res.off('error', onClose);
      resolve(ok && !res.destroyed);
    };
    const onDrain = done(true);
    const onClose = done(false);
    res.on('drain', onDrain);
    res.on('close', onClose);
    res.on('error', onClose);
  });
}
