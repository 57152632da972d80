/**
 * Alertmanager's webhook payload (version "4"), our own typed copy: only what we use is
 * checked, every unknown field is ignored, and each alert is judged on its own labels
 * (never on commonLabels, which only hold what all alerts of a group share).
 */
export interface Alert {
  readonly status: 'firing' | 'resolved';
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  readonly startsAt: string;
  readonly endsAt?: string;
  readonly fingerprint: string;
}

export interface Notification {
  readonly version: string;
  readonly receiver?: string;
  readonly status?: string;
  readonly groupKey?: string;
  readonly truncatedAlerts: number;
  readonly alerts: readonly Alert[];
  /** Alerts left out because they lacked what every alert must have. */
  readonly malformedAlerts: number;
}

export class PayloadError extends Error {}

function stringMap(value: unknown): Record<string, string> | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) if (typeof v === 'string') out[k] = v;
  return out;
}

/** Throws PayloadError (→ 400, never retried by Alertmanager) when the body is not a notification. */
export function parseNotification(body: unknown): Notification {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new PayloadError('body must be a JSON object');
  const b = body as Record<string, unknown>;
  if (!Array.isArray(b.alerts)) throw new PayloadError('"alerts" must be an array');
  const alerts: Alert[] = [];
  let malformed = 0;
  for (const raw of b.alerts) {
    const a = raw as Record<string, unknown> | null;
    const labels = stringMap(a?.labels);
    const status = a?.status;
    if (!a || !labels || (status !== 'firing' && status !== 'resolved') || typeof a.startsAt !== 'string') {
      malformed++;
      continue;
    }
    alerts.push({
      status,
      labels,
      annotations: stringMap(a.annotations) ?? {},
      startsAt: a.startsAt,
      ...(typeof a.endsAt === 'string' ? { endsAt: a.endsAt } : {}),
      // Older senders may omit the fingerprint; the label set identifies the alert as well.
      fingerprint: typeof a.fingerprint === 'string' && a.fingerprint !== '' ? a.fingerprint : labelFingerprint(labels),
    });
  }
  return {
    version: typeof b.version === 'string' ? b.version : '',
    ...(typeof b.receiver === 'string' ? { receiver: b.receiver } : {}),
    ...(typeof b.status === 'string' ? { status: b.status } : {}),
    ...(typeof b.groupKey === 'string' ? { groupKey: b.groupKey } : {}),
    truncatedAlerts: typeof b.truncatedAlerts === 'number' && b.truncatedAlerts > 0 ? b.truncatedAlerts : 0,
    alerts,
    malformedAlerts: malformed,
  };
}

function labelFingerprint(labels: Record<string, string>): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(',');
}
