// The one backoff of Outpost: how long to wait before retry n, and a sleep that can be cut
// short. Pure and free of Node APIs (the dashboard uses it too, in the browser).

/**
 * How the delay is spread around the exponential ceiling `min(maxMs, initialMs * 2^attempt)`:
 * - `none`: exactly the ceiling (a local child process: nobody to collide with);
 * - `equal`: uniform in [ceiling / 2, ceiling] (never much shorter than planned);
 * - `full`: uniform in [0, ceiling] (AWS's "full jitter": spreads a fleet the most);
 * - `decorrelated`: uniform in [initialMs, 3 * previous delay], capped (AWS's "decorrelated
 *   jitter": grows like the others but each client drifts off its own way).
 */
export type Jitter = 'none' | 'equal' | 'full' | 'decorrelated';

export interface BackoffPolicy {
  /** Delay (the ceiling, before jitter) of the first retry, ms. */
  initialMs: number;
  /** No delay is longer than this, ms. */
  maxMs: number;
  jitter: Jitter;
}

/** Attempts beyond this do not grow the ceiling further (2^30 overflows nothing and is far past any cap). */
const MAX_DOUBLINGS = 30;

/**
 * The delay before retry `attempt` (0 for the first retry), ms. `random` returns [0, 1);
 * `previousMs` is the delay returned for the attempt before (decorrelated jitter only).
 */
export function backoffDelayMs(policy: BackoffPolicy, attempt: number, random: () => number = Math.random, previousMs?: number): number {
  const { initialMs, maxMs, jitter } = policy;
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(Math.max(0, attempt), MAX_DOUBLINGS));
  switch (jitter) {
    case 'none':
      return ceiling;
    case 'equal':
      return ceiling / 2 + random() * (ceiling / 2);
    case 'full':
      return random() * ceiling;
    case 'decorrelated': {
      const upper = Math.max(initialMs, 3 * (previousMs ?? initialMs));
      return Math.min(maxMs, initialMs + random() * (upper - initialMs));
    }
  }
}

/** A retry loop's backoff: each `next()` is the delay before the next retry; `reset()` after a success. */
export interface Backoff {
  next(): number;
  reset(): void;
  /** Retries since the last reset. */
  attempts(): number;
}

export function createBackoff(policy: BackoffPolicy, random: () => number = Math.random): Backoff {
  let attempt = 0;
  let previousMs: number | undefined;
  return {
    next() {
      previousMs = backoffDelayMs(policy, attempt++, random, previousMs);
      return previousMs;
    },
    reset() {
      attempt = 0;
      previousMs = undefined;
    },
    attempts: () => attempt,
  };
}

/**
 * Waits `ms`, or less when `signal` aborts first (the way to wake a retry loop early: a
 * reconnect, new work, a stop). Resolves true when woken early, false when the time ran out.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted === true) return Promise.resolve(true);
  return new Promise((resolve) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(false);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
