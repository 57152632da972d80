/** A small reader of Prometheus text exposition for assertions. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    if (m[3]) {
      for (const lm of m[3].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
        labels[lm[1]!] = lm[2]!.replace(/\\(.)/g, (_m, c: string) => (c === 'n' ? '\n' : c));
      }
    }
    // The exposition format writes infinities as +Inf and -Inf, which Number() does not read.
    const text = m[4]!;
    out.push({ name: m[1]!, labels, value: text === '+Inf' ? Infinity : text === '-Inf' ? -Infinity : Number(text) });
  }
  return out;
}

/** Sum of every sample named `name` whose labels include `match` (absent → undefined). */
export function metricValue(samples: Sample[], name: string, match: Record<string, string> = {}): number | undefined {
  let found = false;
  let sum = 0;
  for (const s of samples) {
    if (s.name !== name) continue;
    if (!Object.entries(match).every(([k, v]) => s.labels[k] === v)) continue;
    found = true;
    sum += s.value;
  }
  return found ? sum : undefined;
}

/**
 * What one scrape must show from one moment: a worker's `celery_worker_up` and its queue's worker,
 * process and consumer counts and length (undefined where the scrape has no such series).
 */
export function workerAndQueueFigures(samples: Sample[], hostname: string, queue: string) {
  const q = { queue_name: queue };
  return {
    up: metricValue(samples, 'celery_worker_up', { hostname }),
    workers: metricValue(samples, 'celery_active_worker_count', q),
    processes: metricValue(samples, 'celery_active_process_count', q),
    consumers: metricValue(samples, 'celery_active_consumer_count', q),
    length: metricValue(samples, 'celery_queue_length', q),
  };
}
