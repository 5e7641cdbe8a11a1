// When the demo restarts a process that died on its own, and when it gives up: the rules of a
// service manager (systemd's Restart=, RestartSec= and StartLimitBurst= / StartLimitIntervalSec=),
// as pure functions of the restart history, so they are tested without any process.

/** At most `burst` restarts within any `intervalMs`; one more means the process is given up. */
export interface RestartLimit {
  burst: number;
  intervalMs: number;
}

/** 5 restarts per process in 60 s: a crash now and then is restarted, a crash loop is not. */
export const DEFAULT_RESTART_LIMIT: RestartLimit = Object.freeze({ burst: 5, intervalMs: 60_000 });

/**
 * Pause between an exit and the restart (systemd's RestartSec default): the dead process's
 * sockets are closed by then, and a process that dies at once does not spin.
 */
export const DEFAULT_RESTART_DELAY_MS = 100;

export type RestartDecision =
  /** Restart now; `historyMs` is the restarts within the interval, this one included, to keep for the next decision. */
  | { type: 'restart'; historyMs: number[] }
  /** The limit is reached: `recent` restarts within the interval already. */
  | { type: 'give-up'; recent: number };

/**
 * Decides what to do when a supervised process exited (or a restart of it failed) at `nowMs`,
 * given the times of its earlier restarts (epoch ms, any order).
 */
export function decideRestart(historyMs: readonly number[], nowMs: number, limit: RestartLimit = DEFAULT_RESTART_LIMIT): RestartDecision {
  const recent = historyMs.filter((atMs) => nowMs - atMs < limit.intervalMs);
  if (recent.length >= limit.burst) return { type: 'give-up', recent: recent.length };
  return { type: 'restart', historyMs: [...recent, nowMs] };
}

/** `5 restarts in 60 s`, for messages. */
export function formatRestartLimit(limit: RestartLimit): string {
  return `${limit.burst} restart${limit.burst === 1 ? '' : 's'} in ${Number((limit.intervalMs / 1_000).toFixed(1))} s`;
}
