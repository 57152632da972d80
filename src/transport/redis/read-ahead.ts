/**
 * The Redis event read-ahead: decides, message by message, whether to process an event inline
 * (as it arrives) or to queue it and process the queue in short slices.
 *
 * Redis PUB/SUB does not wait for a slow subscriber: past its output-buffer limit (32 MB by
 * default) it closes the connection and everything published meanwhile is lost. So reading the
 * socket must never wait for processing once processing falls behind. While it keeps up,
 * messages are processed as they arrive (no extra memory). When processing holds the loop too
 * long (see TURN_BUDGET_MS), messages are queued as they arrive instead and processed in short
 * slices with a deferral in between, which lets the loop read the socket again between slices: a
 * burst waits in our memory (bounded) rather than in Redis's. Once the queue is empty, processing
 * goes back to inline.
 *
 * Pure: time comes from `now` and "later, after the loop has read its sockets" from `defer`
 * (performance.now and setImmediate in production), so the trigger and the bound are unit-tested
 * deterministically.
 */

/** How long one slice of queued processing may hold the event loop before the socket is read again. */
export const DRAIN_SLICE_MS = 5;
/**
 * Inline processing switches to read-ahead when it holds one turn of the event loop longer than
 * TURN_BUDGET_MS (one read brought more than we process quickly), or takes more than
 * BUSY_FRACTION of a BUSY_WINDOW_MS window (many small reads, back to back). Until then, at most
 * ~100 ms of arrivals wait in the socket and in Redis's buffer (about 10 MB at the fastest rate
 * measured, far under its 32 MB limit); below it, a burst costs no extra memory.
 */
export const TURN_BUDGET_MS = 50;
export const BUSY_WINDOW_MS = 100;
export const BUSY_FRACTION = 0.8;
/** The queue is compacted once this many entries at its head are spent. */
const COMPACT_AFTER = 65_536;

export interface ReadAheadOptions {
  /** Queued messages may hold this many bytes; past it new ones go to `onBacklogFull`. */
  readonly maxBacklogBytes: number;
  /** Monotonic milliseconds. */
  readonly now: () => number;
  /** Runs `task` once the event loop has polled its sockets (setImmediate). */
  readonly defer: (task: () => void) => void;
  readonly process: (channel: Buffer, message: Buffer) => void;
  readonly onBacklogFull: () => void;
}

export class ReadAhead {
  /** Channel and message pairs not processed yet (flat: [channel, message, channel, ...]). */
  #queue: Buffer[] = [];
  #head = 0;
  #bytes = 0;
  #draining = false;
  /** Queue messages as they arrive (processing fell behind) rather than process them inline. */
  #queuing = false;
  #windowStart = Number.NEGATIVE_INFINITY;
  #busyMs = 0;
  /** Inline processing time in the current event-loop turn. */
  #turnMs = 0;
  #turnOpen = false;
  readonly #endTurn = (): void => {
    this.#turnOpen = false;
  };

  constructor(private readonly options: ReadAheadOptions) {}

  /** True while messages are being queued rather than processed as they arrive. */
  get queuing(): boolean {
    return this.#queuing;
  }

  /** Bytes of the messages waiting in the queue. */
  get backlogBytes(): number {
    return this.#bytes;
  }

  push(channel: Buffer, message: Buffer): void {
    if (!this.#queuing) {
      this.#processInline(channel, message);
      return;
    }
    if (this.#bytes + message.length > this.options.maxBacklogBytes) {
      this.options.onBacklogFull();
      return;
    }
    this.#queue.push(channel, message);
    this.#bytes += message.length;
    if (!this.#draining) {
      this.#draining = true;
      this.options.defer(this.#drain);
    }
  }

  /** Forgets everything queued (the transport is closing). */
  clear(): void {
    this.#queue = [];
    this.#head = 0;
    this.#bytes = 0;
  }

  #processInline(channel: Buffer, message: Buffer): void {
    const { now } = this.options;
    const start = now();
    if (start - this.#windowStart > BUSY_WINDOW_MS) {
      this.#windowStart = start;
      this.#busyMs = 0;
    }
    if (!this.#turnOpen) {
      // The turn ends when the loop gets back to its check phase.
      this.#turnOpen = true;
      this.#turnMs = 0;
      this.options.defer(this.#endTurn);
    }
    this.options.process(channel, message);
    const spent = now() - start;
    this.#busyMs += spent;
    this.#turnMs += spent;
    if (this.#turnMs > TURN_BUDGET_MS || this.#busyMs > BUSY_WINDOW_MS * BUSY_FRACTION) this.#queuing = true;
  }

  readonly #drain = (): void => {
    if (this.#head >= this.#queue.length) {
      // Cleared while a drain was pending.
      this.#caughtUp();
      return;
    }
    const deadline = this.options.now() + DRAIN_SLICE_MS;
    const queue = this.#queue;
    let i = this.#head;
    while (i < queue.length) {
      const channel = queue[i]!;
      const message = queue[i + 1]!;
      i += 2;
      this.#bytes -= message.length;
      this.options.process(channel, message);
      // Check the clock every 64 messages: cheap, and a slice stays a few milliseconds.
      if ((i & 127) === 0 && this.options.now() > deadline) break;
    }
    if (queue !== this.#queue) return; // cleared by a processed message: nothing left to drain
    if (i >= queue.length) {
      this.#caughtUp();
      return;
    }
    this.#head = i;
    if (i > COMPACT_AFTER) {
      this.#queue = queue.slice(i);
      this.#head = 0;
    }
    this.options.defer(this.#drain);
  };

  #caughtUp(): void {
    this.#queue = [];
    this.#head = 0;
    this.#draining = false;
    this.#queuing = false;
    this.#busyMs = 0;
  }
}
