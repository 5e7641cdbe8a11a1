/** Default burst: one second's worth of messages. */
export const DEFAULT_BURST_SECONDS = 1;

export interface RateLimiter {
  /** Takes one token for `key`; false when the key is over its rate. */
  tryTake(key: string, nowMs?: number): boolean;
  /** Forgets a key (its device disconnected). */
  forget(key: string): void;
}

interface Bucket {
  tokens: number;
  updatedMs: number;
}

/**
 * Token bucket per key. `ratePerS` 0 turns limiting off.
 * @param ratePerS sustained messages per second per key
 * @param burst bucket size, default one second's worth
 */
export function createRateLimiter(ratePerS: number, burst = Math.max(1, Math.ceil(ratePerS * DEFAULT_BURST_SECONDS))): RateLimiter {
  const buckets = new Map<string, Bucket>();
  if (ratePerS <= 0) return { tryTake: () => true, forget: () => undefined };
  return {
    tryTake(key, nowMs = performance.now()) {
      let bucket = buckets.get(key);
      if (bucket === undefined) {
        bucket = { tokens: burst, updatedMs: nowMs };
        buckets.set(key, bucket);
      }
      bucket.tokens = Math.min(burst, bucket.tokens + ((nowMs - bucket.updatedMs) * ratePerS) / 1000);
      bucket.updatedMs = nowMs;
      if (bucket.tokens < 1) return false;
      bucket.tokens -= 1;
      return true;
    },
    forget(key) {
      buckets.delete(key);
    },
  };
}
