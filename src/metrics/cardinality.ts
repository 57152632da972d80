/**
 * Caps the number of distinct values one label may take. The first `max` values seen are kept;
 * later ones are reported as the overflow value, so a flood of task names or client hostnames
 * cannot grow the series count (or our memory) without bound.
 */
export class LabelLimiter {
  readonly #known = new Set<string>();
  overflowed = 0;

  constructor(
    readonly label: string,
    private readonly max: number,
    private readonly overflowValue: string,
  ) {}

  value(raw: string): string {
    if (this.#known.has(raw)) return raw;
    if (this.#known.size < this.max) {
      this.#known.add(raw);
      return raw;
    }
    this.overflowed++;
    return this.overflowValue;
  }

  /** A value that left (a purged worker) frees its slot. */
  forget(raw: string): void {
    this.#known.delete(raw);
  }

  get size(): number {
    return this.#known.size;
  }
}
