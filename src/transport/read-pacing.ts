import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { TLSSocket } from 'node:tls';

/**
 * Read pacing: at low and normal event rates, read a broker socket a few times a second in
 * batches instead of once per arriving TCP segment.
 *
 * Why: at 1,500 events/s one event per message, the exporter's CPU was dominated not by event
 * work but by waking up: the event loop woke 300–500 times a second for a few messages each, and
 * on a virtual machine each wake-up (the host scheduling the vCPU back, cold caches) cost about
 * 120 µs: more than the events it delivered. Pausing reads for `windowMs` after a read that
 * drained the socket lets the kernel gather the next messages, so one wake-up carries a window's
 * worth of them (bench/README.md, "Read pacing"). Nothing is lost or reordered: unread bytes wait
 * in the kernel's receive buffer, and TCP flow control holds the sender if that fills.
 *
 * Bursts are never slowed: a read that fills a whole read buffer means more is waiting, so
 * reading goes on at once; a window that brings STREAMING_BYTES or more switches pacing off
 * (plain reading, as without it) until a window brings less; and windows that each bring a full
 * read buffer shorten the pause until pacing is off, for when the kernel's receive buffer, not
 * the sender, is what limits a window. So while paced, at most a window's worth of traffic —
 * under STREAMING_BYTES — waits outside the process: on Redis that bounds what waits in the
 * server's pub/sub output buffer far below its 32 MB limit.
 */

/** libuv reads a TCP socket into 64 KiB buffers: a read that fills one left more in the kernel. */
export const FULL_READ_BYTES = 64 * 1024;
/** Past this many bytes in one window, pacing stops (2.5 MB/s at the default 100 ms window). */
export const STREAMING_BYTES = 256 * 1024;
/** Pauses halved below this are not worth a timer: pacing stops (see `afterRead`). */
export const MIN_PAUSE_MS = 1;

/** The decision, pure (bytes and time are passed in), so it is unit-tested without sockets. */
export class ReadPacer {
  #streaming = false;
  #windowStart = 0;
  #windowStartBytes = 0;
  #lastBytes = 0;
  #pauseMs: number;

  constructor(readonly windowMs: number) {
    this.#pauseMs = windowMs;
  }

  /** How long the pause that `afterRead` asked for lasts. */
  get pauseMs(): number {
    return this.#pauseMs;
  }

  get streaming(): boolean {
    return this.#streaming;
  }

  /** Reading starts (or resumes after a pause): a new window begins. `bytesRead` is the socket's running total. */
  resumed(bytesRead: number, now: number): void {
    this.#windowStart = now;
    this.#windowStartBytes = bytesRead;
    this.#lastBytes = bytesRead;
  }

  /** After each read: true when reads should pause for `windowMs`. */
  afterRead(bytesRead: number, now: number): boolean {
    const read = bytesRead - this.#lastBytes;
    this.#lastBytes = bytesRead;
    const inWindow = bytesRead - this.#windowStartBytes;
    if (this.#streaming) {
      if (now - this.#windowStart < this.windowMs) return false;
      if (inWindow >= STREAMING_BYTES) {
        this.resumed(bytesRead, now);
        return false;
      }
      this.#streaming = false;
      this.#pauseMs = this.windowMs;
      return true;
    }
    if (inWindow >= STREAMING_BYTES) return this.#startStreaming(bytesRead, now);
    if (read >= FULL_READ_BYTES) return false;
    // A window can bring no more than the kernel's receive buffer holds, and Linux grows that
    // buffer only for a reader that keeps up: paced, a new connection's buffer (~100 KiB) never
    // grew, no window reached STREAMING_BYTES, and a 16 MiB burst was read at ~2 MB/s in 176
    // pauses. So a window that brought a full read buffer or more halves the next pause, down
    // to streaming; a window that brought less restores it.
    if (inWindow < FULL_READ_BYTES) this.#pauseMs = this.windowMs;
    else if ((this.#pauseMs /= 2) < MIN_PAUSE_MS) return this.#startStreaming(bytesRead, now);
    return true;
  }

  #startStreaming(bytesRead: number, now: number): false {
    this.#streaming = true;
    this.#pauseMs = this.windowMs;
    this.resumed(bytesRead, now);
    return false;
  }
}

export interface ReadPacing {
  /**
   * Read without pausing until the returned release is called or `forMs` has passed, whichever
   * comes first: someone awaits an answer on this socket. The bound keeps an answer that never
   * comes (a worker that does not reply) from unpacing the stream for long.
   */
  hurry(forMs: number): () => void;
  stop(): void;
  /** Times reads were paused so far. */
  readonly pauses: number;
}

/** Node's stream handle (TCPWrap): the only way to leave bytes in the kernel for a while. */
interface StreamHandle {
  reading: boolean;
  readStart(): number;
  readStop(): number;
}

/** net.Socket keeps its handle as `_handle` (null once closed); not part of Node's typings. */
function handleOf(socket: Socket): StreamHandle | null | undefined {
  return (socket as unknown as { _handle?: StreamHandle | null })._handle;
}

const UNPACED: ReadPacing = { hurry: () => () => undefined, stop: () => undefined, pauses: 0 };

/**
 * Paces reads on a connected plain-TCP socket, whichever way its consumer reads it (amqplib:
 * 'readable'; ioredis: 'data'). Our listener runs after the consumer's, so a read is always
 * processed before reads pause. `windowMs` 0, a TLS socket or a socket without a stream handle
 * is left untouched.
 */
export function paceReads(socket: Socket, windowMs: number): ReadPacing {
  // Over TLS (amqps://, rediss://) Node's TLS layer restarts reads from the TCP handle itself
  // (measured: every write still arrived as its own read), so a pause would only add timers.
  if (socket instanceof TLSSocket) return UNPACED;
  const handle = handleOf(socket);
  if (windowMs <= 0 || typeof handle?.readStop !== 'function' || typeof handle.readStart !== 'function') return UNPACED;
  // Paced by the event its consumer reads with: a 'readable' listener on a flowing stream would stop its 'data'.
  if (socket.readableFlowing === null) return UNPACED;
  const event = socket.readableFlowing ? 'data' : 'readable';
  const pacer = new ReadPacer(windowMs);
  let timer: NodeJS.Timeout | undefined;
  let hurrying = 0;
  let stopped = false;
  let pauses = 0;

  const current = (): StreamHandle | undefined => (socket.destroyed ? undefined : (handleOf(socket) ?? undefined));
  const resume = (): void => {
    clearTimeout(timer);
    timer = undefined;
    const h = current();
    if (!h) return;
    pacer.resumed(socket.bytesRead, performance.now());
    // `reading` stayed true throughout (see onRead), so Node never restarted the handle behind our back.
    if (h.reading) h.readStart();
  };
  const onRead = (): void => {
    if (timer !== undefined || hurrying > 0 || stopped) return;
    if (!pacer.afterRead(socket.bytesRead, performance.now())) return;
    const h = current();
    // reading === false: Node itself stopped the handle (its buffer is full) and restarts it when drained.
    if (!h?.reading) return;
    // readStop() without clearing `reading`: Node's stream code (net.Socket#_read) restarts a
    // handle it believes stopped as soon as its buffer has room, which would undo the pause.
    h.readStop();
    pauses += 1;
    timer = setTimeout(resume, pacer.pauseMs);
    timer.unref();
  };
  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    socket.off(event, onRead);
    if (timer !== undefined) resume();
  };

  pacer.resumed(socket.bytesRead, performance.now());
  socket.on(event, onRead);
  socket.once('close', stop);
  return {
    hurry(forMs) {
      hurrying += 1;
      if (timer !== undefined) resume();
      let released = false;
      const release = (): void => {
        if (released) return;
        released = true;
        clearTimeout(cap);
        hurrying -= 1;
      };
      const cap = setTimeout(release, forMs);
      cap.unref();
      return release;
    },
    stop,
    get pauses() {
      return pauses;
    },
  };
}
