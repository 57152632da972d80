import type { WorkerRecord, WorkerRegistry } from '../state/workers.js';
import { age, html, isoTime, type Html } from './html.js';

/** The broker connection and the event stream as the console reports them. */
export interface ClusterHealth {
  connected: boolean;
  subscribed: boolean;
  reconnects: number;
  lastError?: string;
  /** When (ms) `connected` last changed. */
  since?: number;
  /** Local time (ms) of the last Celery event; 0 before the first. */
  lastEventAtMs: number;
  eventsDropped: number;
}

/**
 * up, down, or unknown: a worker that was alive when the broker connection went away has sent
 * heartbeats nobody could receive since, so it is not known to be down. During a broker restart
 * every worker would otherwise turn DOWN at once with nothing saying why.
 */
export type WorkerState = 'up' | 'down' | 'unknown';

export function workerState(registry: WorkerRegistry, w: WorkerRecord, health: ClusterHealth, nowMs: number): WorkerState {
  if (registry.isAlive(w, nowMs)) return 'up';
  if (!health.connected && health.since !== undefined && registry.isAlive(w, health.since)) return 'unknown';
  return 'down';
}

export const WORKER_STATE_TITLE: Record<WorkerState, string> = {
  up: 'heartbeats arrive',
  down: 'no heartbeat within its window (2 × its heartbeat interval)',
  unknown: 'the broker is unreachable: its heartbeats cannot arrive, so its state is unknown',
};

/**
 * One line on top of every page while something is wrong with what the console sees: the broker
 * is unreachable (since when, how many workers that hides), or events stopped arriving.
 */
export function healthBanner(health: ClusterHealth, hidden: number, nowMs: number): Html {
  if (!health.connected) {
    return html`<p class="banner bad" role="alert" id="broker-banner"><strong>Broker unreachable</strong>${health.since !== undefined ? html` since ${isoTime(health.since)} (${age(health.since, nowMs)} ago)` : ''}, reconnecting (${health.reconnects} attempts so far)${health.lastError ? html`: <span class="mono">${health.lastError}</span>` : ''}.
${hidden > 0 ? html` ${hidden} worker${hidden === 1 ? '' : 's'} that ${hidden === 1 ? 'was up shows' : 'were up show'} as <em>unknown</em>, not down: their heartbeats cannot arrive until the broker is back.` : ''}</p>`;
  }
  if (!health.subscribed)
    return html`<p class="banner warn" role="status" id="broker-banner">Broker connected, event subscription not yet confirmed.</p>`;
  return html``;
}
