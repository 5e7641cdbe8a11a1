// When the agent feeds systemd's watchdog: a pure function of the health checks and the time,
// so the rule is tested without systemd, timers or an HTTP server.
import type { HealthCheck } from '../http/http-server.js';

/** The check the notifier reports when its own /healthz did not answer. */
export const HEALTHZ_CHECK = 'healthz';

/** How long a restart-worthy check may fail before the watchdog goes hungry, ms. */
export const DEFAULT_RESTART_AFTER_FAILING_MS = 120_000;

export interface WatchdogPolicy {
  /**
   * Checks a restart can cure. The others recover by themselves or need an operator: the
   * inference supervisor restarts its own process and a refused model stays refused; the
   * bridge reconnects to the site broker. Restarting the agent for them would only interrupt
   * ingest, and a loop of restarts would end in systemd's start limit with the agent down.
   */
  restartOnChecks: readonly string[];
  /** A restart-worthy check failing this long without a pass stops the feeding, ms. */
  restartAfterFailingMs: number;
}

/**
 * The outbox (commits failing: a stuck database handle, a full disk; publishes stay
 * unacknowledged meanwhile) and the agent's own /healthz not answering (its event loop is
 * alive, since the probe runs, but its HTTP server is not).
 */
export const DEFAULT_WATCHDOG_POLICY: WatchdogPolicy = Object.freeze({
  restartOnChecks: Object.freeze(['outbox', HEALTHZ_CHECK]),
  restartAfterFailingMs: DEFAULT_RESTART_AFTER_FAILING_MS,
});

/** Since when each restart-worthy check has failed without a pass in between (ms, the caller's clock). */
export interface WatchdogState {
  readonly failingSinceMs: ReadonlyMap<string, number>;
}

export const INITIAL_WATCHDOG_STATE: WatchdogState = { failingSinceMs: new Map() };

export interface WatchdogDecision {
  /** Send WATCHDOG=1 now. */
  feed: boolean;
  /** The one-line STATUS= for `systemctl status`. */
  status: string;
  /** Restart-worthy checks failing for longer than the policy allows (why `feed` is false). */
  overdue: string[];
  state: WatchdogState;
}

/**
 * Decides one watchdog tick. Feeding needs only that this code runs (a blocked event loop never
 * gets here, so systemd restarts a hung agent after WatchdogSec=) and that no restart-worthy
 * check has failed for longer than `policy.restartAfterFailingMs`: a short failure gets the
 * agent's own recovery (commit retries) its chance first.
 */
export function decideWatchdog(state: WatchdogState, checks: readonly HealthCheck[], nowMs: number, policy: WatchdogPolicy = DEFAULT_WATCHDOG_POLICY): WatchdogDecision {
  const failing = checks.filter((c) => !c.ok);
  const failingSinceMs = new Map<string, number>();
  for (const check of failing) {
    if (policy.restartOnChecks.includes(check.name)) failingSinceMs.set(check.name, state.failingSinceMs.get(check.name) ?? nowMs);
  }
  const overdue = [...failingSinceMs].filter(([, sinceMs]) => nowMs - sinceMs > policy.restartAfterFailingMs).map(([name]) => name);
  return { feed: overdue.length === 0, status: statusLine(failing, failingSinceMs, overdue, nowMs), overdue, state: { failingSinceMs } };
}

function statusLine(failing: readonly HealthCheck[], failingSinceMs: ReadonlyMap<string, number>, overdue: readonly string[], nowMs: number): string {
  if (failing.length === 0) return 'healthy';
  const described = failing.map((c) => {
    const since = failingSinceMs.get(c.name);
    const age = since === undefined ? '' : ` for ${Math.round((nowMs - since) / 1000)} s`;
    return `${c.name}${age}${c.detail === undefined || c.detail === '' ? '' : `: ${c.detail}`}`;
  });
  const head = overdue.length === 0 ? 'degraded' : `watchdog no longer fed (${overdue.join(', ')}); systemd restarts the agent`;
  return `${head}: ${described.join('; ')}`;
}
