import type { Clock } from '../clock.js';
import type { BrokerTransport, ControlRequest } from '../transport/transport.js';
import type { WireArguments } from './command-arguments.js';
import type { Confirmation } from './confirmations.js';

/** How a confirmation polls: bounded in time, never more often than every `intervalMs`. */
export interface ConfirmSettings {
  readonly timeoutMs: number;
  readonly intervalMs: number;
  /** Idle reply timeout of each probe. */
  readonly probeTimeoutMs: number;
  readonly clock: Clock;
  readonly sleep: (ms: number) => Promise<void>;
}

export interface ConfirmOutcome {
  readonly confirmed: boolean | null;
  readonly confirmation: string;
}

type Targeting = Pick<ControlRequest, 'destination' | 'pattern' | 'matcher'>;

/** One probe round: each answering worker's reply (a missing worker is simply absent). */
async function probe(
  transport: BrokerTransport,
  confirmation: Confirmation,
  args: WireArguments,
  targeting: Targeting,
  timeoutMs: number,
): Promise<Map<string, unknown>> {
  const { method, arguments: probeArgs } = confirmation.probe(args);
  const replies = await transport.broadcast({ method, arguments: probeArgs, ...targeting }, { reply: true, timeoutMs });
  const byWorker = new Map<string, unknown>();
  for (const r of replies) if (!byWorker.has(r.worker)) byWorker.set(r.worker, r.value);
  return byWorker;
}

/**
 * Reads what the effect is measured against before the command is sent (the pool size for
 * pool_grow), from the same workers the command will reach. Commands without a baseline skip it.
 */
export async function readBaselines(
  transport: BrokerTransport,
  confirmation: Confirmation,
  args: WireArguments,
  targeting: Targeting,
  probeTimeoutMs: number,
): Promise<Map<string, number | undefined> | undefined> {
  if (!confirmation.baseline) return undefined;
  const replies = await probe(transport, confirmation, args, targeting, probeTimeoutMs);
  return new Map([...replies].map(([worker, value]) => [worker, confirmation.baseline!(value)]));
}

/**
 * Polls the workers that accepted the command until each shows the effect or the bound passes.
 * Always names the workers it asks. A broker lost half-way ends the polling with what is known:
 * the command itself was sent, so this never throws.
 */
export async function confirmEffects(
  transport: BrokerTransport,
  confirmation: Confirmation,
  args: WireArguments,
  workers: readonly string[],
  baselines: Map<string, number | undefined> | undefined,
  settings: ConfirmSettings,
): Promise<Map<string, ConfirmOutcome>> {
  const outcomes = new Map<string, ConfirmOutcome>();
  const pending = new Set<string>();
  for (const worker of workers) {
    if (baselines && baselines.get(worker) === undefined) {
      outcomes.set(worker, {
        confirmed: null,
        confirmation: `cannot confirm: the worker reported no ${confirmation.expectation(args, undefined)} before the command`,
      });
    } else {
      pending.add(worker);
    }
  }
  const expectation = (worker: string): string => confirmation.expectation(args, baselines?.get(worker));
  const deadline = settings.clock.nowMs() + settings.timeoutMs;
  let failure: string | undefined;
  while (pending.size > 0) {
    const started = settings.clock.nowMs();
    let replies: Map<string, unknown>;
    try {
      replies = await probe(transport, confirmation, args, { destination: [...pending] }, settings.probeTimeoutMs);
    } catch (error) {
      failure = (error as Error).message;
      break;
    }
    for (const worker of [...pending]) {
      if (confirmation.reached(replies.get(worker), args, baselines?.get(worker))) {
        outcomes.set(worker, { confirmed: true, confirmation: `observed ${expectation(worker)}` });
        pending.delete(worker);
      }
    }
    const now = settings.clock.nowMs();
    if (pending.size === 0 || now >= deadline) break;
    await settings.sleep(Math.min(Math.max(settings.intervalMs - (now - started), 0), deadline - now));
  }
  for (const worker of pending) {
    const why = failure ? `probing failed (${failure})` : `not within ${settings.timeoutMs} ms`;
    outcomes.set(worker, { confirmed: false, confirmation: `expected ${expectation(worker)}: ${why}` });
  }
  return outcomes;
}
