// Readiness and watchdog for systemd (Type=notify, WatchdogSec=): READY=1 once the agent has
// started, then WATCHDOG=1 every half period while the agent's health allows it, and a
// STATUS= line whenever the health changes, for `systemctl status`.
import type { Logger } from '@outpost/shared';
import type { HealthCheck } from '../http/http-server.js';
import type { Notify } from './systemd-notify.js';
import { decideWatchdog, DEFAULT_WATCHDOG_POLICY, INITIAL_WATCHDOG_STATE, type WatchdogPolicy } from './watchdog-policy.js';

export interface ServiceNotifierOptions {
  notify: Notify;
  /** The unit's watchdog period, ms; undefined: readiness only. */
  watchdogMs: number | undefined;
  /** The agent's current health checks; must not reject. */
  health: () => Promise<HealthCheck[]>;
  logger: Logger;
  policy?: WatchdogPolicy;
  /** Clock of the policy, ms; default Date.now. */
  nowMs?: () => number;
}

export interface ServiceNotifier {
  /** Sends READY=1 with `status`, then starts feeding the watchdog. Failures are logged, never thrown. */
  ready(status: string): Promise<void>;
  /** Stops the watchdog and sends STOPPING=1 (logged if it fails). Idempotent. */
  close(): void;
}

/**
 * How often to feed: half the period, as sd_watchdog_enabled(3) advises, so one late tick (a
 * long GC, a slow health answer) is not yet a restart.
 */
export function watchdogIntervalMs(watchdogMs: number): number {
  return Math.max(1, Math.floor(watchdogMs / 2));
}

export function createServiceNotifier(options: ServiceNotifierOptions): ServiceNotifier {
  const { notify, logger, watchdogMs } = options;
  const policy = options.policy ?? DEFAULT_WATCHDOG_POLICY;
  const nowMs = options.nowMs ?? Date.now;
  let state = INITIAL_WATCHDOG_STATE;
  let lastStatus: string | undefined;
  let hungry = false;
  let timer: NodeJS.Timeout | undefined;
  let ticking = false;
  let closed = false;

  const send = (assignments: string[]): Promise<void> =>
    notify(assignments).catch((err: unknown) => logger.error({ err, assignments: assignments.map((a) => a.split('=')[0]) }, 'cannot notify systemd'));

  const tick = async (): Promise<void> => {
    // A health answer slower than the interval: the next tick waits for it rather than piling up.
    if (ticking || closed) return;
    ticking = true;
    try {
      const checks = await options.health();
      if (closed) return;
      const decision = decideWatchdog(state, checks, nowMs(), policy);
      state = decision.state;
      if (!decision.feed && !hungry) logger.error({ checks: checks.filter((c) => !c.ok), overdue: decision.overdue, restartAfterFailingMs: policy.restartAfterFailingMs }, 'unhealthy for too long: no longer feeding the systemd watchdog, which restarts the agent');
      if (decision.feed && hungry) logger.warn('healthy again: feeding the systemd watchdog');
      hungry = !decision.feed;
      const assignments = decision.feed ? ['WATCHDOG=1'] : [];
      if (decision.status !== lastStatus) assignments.push(`STATUS=${decision.status}`);
      lastStatus = decision.status;
      if (assignments.length > 0) await send(assignments);
    } finally {
      ticking = false;
    }
  };

  return {
    async ready(status) {
      if (closed) return;
      lastStatus = status;
      await send(['READY=1', `STATUS=${status}`]);
      if (watchdogMs === undefined || closed) return;
      timer = setInterval(() => void tick(), watchdogIntervalMs(watchdogMs));
      // The agent's own handles keep it alive; the watchdog must not keep a stopping agent up.
      timer.unref();
      logger.info({ watchdogMs, intervalMs: watchdogIntervalMs(watchdogMs) }, 'feeding the systemd watchdog');
    },
    close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      void send(['STOPPING=1']);
    },
  };
}
