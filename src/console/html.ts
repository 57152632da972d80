import { escapeHtml } from '../html.js';

/**
 * HTML built from templates whose every interpolated value is escaped (worker names, task names,
 * args and tracebacks all come from the broker), except values already built this way. Arrays
 * are joined; null, undefined and false render as nothing.
 */
export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

function part(value: unknown): string {
  if (value instanceof Html) return value.text;
  if (Array.isArray(value)) return value.map(part).join('');
  if (value === null || value === undefined || value === false) return '';
  return escapeHtml(typeof value === 'string' ? value : typeof value === 'object' ? JSON.stringify(value) : String(value));
}

export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += part(values[i]) + strings[i + 1]!;
  return new Html(out);
}

/** A table's rows, or one muted row across all its columns saying why there are none. */
export function rowsOr(rows: readonly unknown[], columns: number, empty: string): Html {
  return rows.length ? html`${rows}` : html`<tr><td colspan="${columns}" class="muted">${empty}</td></tr>`;
}

/** Pretty JSON for a <pre>, escaped by `html` like everything else. */
export function json(value: unknown): string {
  try {
    return JSON.stringify(value, null, 2) ?? String(value);
  } catch {
    return String(value);
  }
}

/** Seconds or milliseconds since the epoch → ISO-8601 in UTC, without the milliseconds. */
export function isoTime(epochMs: number | undefined | null): string {
  if (epochMs === undefined || epochMs === null || !Number.isFinite(epochMs)) return '';
  return new Date(epochMs).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** "3 s", "4 min", "2 h" ago: how on-call people read heartbeat ages. */
export function age(epochMs: number | undefined, nowMs: number): string {
  if (epochMs === undefined) return '';
  const s = Math.max(0, Math.round((nowMs - epochMs) / 1000));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${Math.round(s / 3600)} h`;
}
