import type { Metric, Registry } from 'prom-client';

/**
 * One metric family as /metrics exposes it: what a module lists as its telemetry and what
 * docs/metrics.md is generated from (`npm run docs:metrics`).
 */
export interface MetricFamily {
  /** With the configured prefix. */
  readonly name: string;
  readonly type: 'counter' | 'gauge' | 'histogram' | 'summary';
  readonly help: string;
  /** Without `metrics.static_labels` (on every series) and a histogram's `le`. */
  readonly labels: readonly string[];
  /** Rendered after the registry from a store of its own (the per-task families), not a prom-client metric. */
  readonly streamed?: true;
}

/** prom-client keeps these on every metric object; its typings leave them out. */
interface MetricShape {
  readonly name: string;
  readonly help: string;
  readonly type: MetricFamily['type'];
  readonly labelNames: readonly string[];
}

/** The families of prom-client metric objects, read from the objects themselves. */
export function familiesOf(metrics: readonly Metric[]): MetricFamily[] {
  return metrics.map((metric) => {
    const m = metric as unknown as MetricShape;
    return { name: m.name, type: m.type, help: m.help, labels: [...m.labelNames] };
  });
}

/**
 * The families `register` adds to the registry: for registrations that hand back no objects
 * (prom-client's `collectDefaultMetrics`).
 */
export function familiesRegisteredBy(registry: Registry, register: () => void): MetricFamily[] {
  const before = new Set(registry.getMetricsAsArray().map((m) => m.name));
  register();
  const added = registry.getMetricsAsArray().filter((m) => !before.has(m.name));
  return familiesOf(added.map((m) => registry.getSingleMetric(m.name)!));
}
