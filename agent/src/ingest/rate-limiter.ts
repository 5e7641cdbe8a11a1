/** Default burst: one second's worth of messages. */
export const DEFAULT_BURST_SECONDS = 1;
/** The limiter sweeps idle keys once it holds this many (and then again at twice what remains). */
export const MIN_SWEEP_KEYS = 1_024;

export interface RateLimiter {
  /** Takes one token for `key`; false when the key is over its rate (nothing taken). */
  tryTake(key: string, nowMs?: number): boolean;
  /**
   * Takes one token for `key` and returns 0 when there is one; otherwise takes nothing and
   * returns the ms until there will be one (the caller pauses the device that long).
   */
  takeOrWait(key: string, nowMs?: number): number;
  /** Keys with state (a full bucket holds none and is swept away). */
  size(): number;
  /** A new rate (0: off) and burst, from now on; buckets keep their tokens, capped at the new burst. */
  configure(ratePerS: number, burst?: number): void;
}

interface Bucket {
  tokens: number;
  updatedMs: number;
}

/**
 * Token bucket per key. `ratePerS` 0 turns limiting off.
 *
 * State stays bounded: a bucket that has refilled to `burst` carries no information (a new one
 * starts full), so once the map holds MIN_SWEEP_KEYS keys, or twice as many as after the last
 * sweep, full buckets are dropped. Devices with ever-new ClientIds cannot grow it without bound.
 *
 * @param ratePerS sustained messages per second per key
 * @param burst bucket size, default one second's worth
 */
export function createRateLimiter(initialRatePerS: number, initialBurst?: number): RateLimiter {
  const buckets = new Map<string, Bucket>();
  let ratePerS = initialRatePerS;
  let burst = defaultBurst(initialRatePerS, initialBurst);
  let sweepAt = MIN_SWEEP_KEYS;

  const refill = (bucket: Bucket, nowMs: number): void => {
    bucket.tokens = Math.min(burst, bucket.tokens + (Math.max(0, nowMs - bucket.updatedMs) * ratePerS) / 1000);
    bucket.updatedMs = nowMs;
  };

  const sweep = (nowMs: number): void => {
    for (const [key, bucket] of buckets) {
      refill(bucket, nowMs);
      if (bucket.tokens >= burst) buckets.delete(key);
    }
    sweepAt = Math.max(MIN_SWEEP_KEYS, 2 * buckets.size);
  };

  const bucketOf = (key: string, nowMs: number): Bucket => {
    let bucket = buckets.get(key);
    if (bucket === undefined) {
      if (buckets.size >= sweepAt) sweep(nowMs);
      bucket = { tokens: burst, updatedMs: nowMs };
      buckets.set(key, bucket);
    } else {
      refill(bucket, nowMs);
    }
    return bucket;
  };

  const takeOrWait = (key: string, nowMs = performance.now()): number => {
    if (ratePerS <= 0) return 0;
    const bucket = bucketOf(key, nowMs);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    // At least 1 ms, so a caller that waits and asks again always finds the token.
    return Math.max(1, Math.ceil(((1 - bucket.tokens) * 1000) / ratePerS));
  };

  return {
    tryTake: (key, nowMs) => takeOrWait(key, nowMs) === 0,
    takeOrWait,
    size: () => buckets.size,
    configure(nextRatePerS, nextBurst) {
      const nowMs = performance.now();
      for (const bucket of buckets.values()) refill(bucket, nowMs);
      ratePerS = nextRatePerS;
      burst = defaultBurst(nextRatePerS, nextBurst);
      for (const bucket of buckets.values()) bucket.tokens = Math.min(bucket.tokens, burst);
    },
  };
}

function defaultBurst(ratePerS: number, burst: number | undefined): number {
  return burst ?? Math.max(1, Math.ceil(ratePerS * DEFAULT_BURST_SECONDS));
}
