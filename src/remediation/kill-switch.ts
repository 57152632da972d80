import type { Redis } from 'ioredis';
import { stateKeys } from './state-keys.js';

/**
 * The kill switch: while engaged, no remediation action is sent (decisions are still audited).
 * `engaged` is the value this replica obeys right now, for the gauge and the API; `read()` is
 * what a decision consults just before it would talk to the broker.
 */
export interface KillSwitch {
  readonly engaged: boolean;
  /** The current value from wherever it lives (throws if that cannot be read: nothing is sent). */
  read(): Promise<boolean>;
  set(on: boolean): Promise<void>;
  /** Called with the obeyed value whenever it is learnt (for the gauge). */
  onChange(listener: (on: boolean) => void): void;
  stop(): void;
}

/** One replica, in memory: `remediation.kill_switch` at start, then whatever an admin sets. */
export class LocalKillSwitch implements KillSwitch {
  #on: boolean;
  #listeners: Array<(on: boolean) => void> = [];

  constructor(initial: boolean) {
    this.#on = initial;
  }

  get engaged(): boolean {
    return this.#on;
  }

  async read(): Promise<boolean> {
    return this.#on;
  }

  async set(on: boolean): Promise<void> {
    this.#on = on;
    for (const l of this.#listeners) l(on);
  }

  onChange(listener: (on: boolean) => void): void {
    this.#listeners.push(listener);
    listener(this.#on);
  }

  stop(): void {}
}

/**
 * Shared by every replica behind `remediation.state_redis_url`, and kept across restarts: one
 * Redis key without expiry. Each decision reads it afresh; a timer refreshes the obeyed value
 * (and so the gauge) every `refreshMs`, so a replica that receives no alerts still shows at once
 * what it would do. `remediation.kill_switch: true` engages it at start (a stop is always safe to
 * repeat); `false` only fills in a missing key, so a restart never releases a switch an admin set.
 */
export class RedisKillSwitch implements KillSwitch {
  #on: boolean;
  #listeners: Array<(on: boolean) => void> = [];
  #timer: NodeJS.Timeout | undefined;
  readonly #key: string;
  #ready: Promise<void>;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    initial: boolean,
    refreshMs: number,
    private readonly onError: (e: Error) => void,
  ) {
    this.#key = prefix + stateKeys.killSwitch;
    // Until Redis has answered, the configured value is obeyed, engaged if it says so.
    this.#on = initial;
    const write = initial ? this.redis.set(this.#key, '1') : this.redis.set(this.#key, '0', 'NX');
    this.#ready = write.then(
      () => this.#refresh(),
      (e: Error) => this.onError(e),
    );
    this.#timer = setInterval(() => {
      this.#refresh().catch((e: unknown) => this.onError(e as Error));
    }, refreshMs);
    this.#timer.unref();
  }

  get engaged(): boolean {
    return this.#on;
  }

  /** Resolves once the value at start has been written and read back (tests, readiness). */
  whenReady(): Promise<void> {
    return this.#ready;
  }

  async read(): Promise<boolean> {
    const value = await this.redis.get(this.#key);
    // A missing key (flushed Redis) means the configured default was lost: obey the last value.
    const on = value === null ? this.#on : value === '1';
    this.#learn(on);
    return on;
  }

  async set(on: boolean): Promise<void> {
    await this.redis.set(this.#key, on ? '1' : '0');
    this.#learn(on);
  }

  onChange(listener: (on: boolean) => void): void {
    this.#listeners.push(listener);
    listener(this.#on);
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async #refresh(): Promise<void> {
    try {
      await this.read();
    } catch (e) {
      this.onError(e as Error);
    }
  }

  #learn(on: boolean): void {
    if (on === this.#on) return;
    this.#on = on;
    for (const l of this.#listeners) l(on);
  }
}
