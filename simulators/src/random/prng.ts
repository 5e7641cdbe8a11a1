/**
 * Seeded randomness for the simulator. Everything random (signals, anomaly schedule, faults,
 * which devices misbehave) draws from a stream named by its purpose, so a run is reproducible
 * from its seed and one stream never shifts another: adding anomalies leaves the normal
 * signal of every sample untouched.
 */
export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform in [min, max). */
  uniform(min: number, max: number): number;
  /** Uniform integer in [min, max], both inclusive. */
  int(min: number, max: number): number;
  /** Standard normal (mean 0, standard deviation 1). */
  normal(): number;
  /** Exponential with the given mean. */
  exponential(mean: number): number;
  /** One element of a non-empty list. */
  pick<T>(items: readonly T[]): T;
}

/**
 * sfc32 (Chris Doty-Humphrey's Small Fast Chaotic generator, PractRand-clean, 128-bit state):
 * 32-bit operations only, so it is exact and identical on every JavaScript engine.
 */
function sfc32(a: number, b: number, c: number, d: number): () => number {
  return () => {
    a |= 0;
    b |= 0;
    c |= 0;
    d |= 0;
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
}

/** cyrb128: a string hashed to the four 32-bit words sfc32 starts from. */
function hashToState(text: string): [number, number, number, number] {
  let h1 = 1779033703;
  let h2 = 3144134277;
  let h3 = 1013904242;
  let h4 = 2773480762;
  for (let i = 0; i < text.length; i++) {
    const k = text.charCodeAt(i);
    h1 = h2 ^ Math.imul(h1 ^ k, 597399067);
    h2 = h3 ^ Math.imul(h2 ^ k, 2869860233);
    h3 = h4 ^ Math.imul(h3 ^ k, 951274213);
    h4 = h1 ^ Math.imul(h4 ^ k, 2716044179);
  }
  h1 = Math.imul(h3 ^ (h1 >>> 18), 597399067);
  h2 = Math.imul(h4 ^ (h2 >>> 22), 2869860233);
  h3 = Math.imul(h1 ^ (h3 >>> 17), 951274213);
  h4 = Math.imul(h2 ^ (h4 >>> 19), 2716044179);
  h1 ^= h2 ^ h3 ^ h4;
  h2 ^= h1;
  h3 ^= h1;
  h4 ^= h1;
  return [h1 >>> 0, h2 >>> 0, h3 >>> 0, h4 >>> 0];
}

/** Warm-up draws: sfc32's first outputs from nearby seeds are correlated. */
const WARM_UP_DRAWS = 12;

/**
 * A random stream named by `parts` (e.g. seed, purpose, device id): the same parts always give
 * the same sequence, different parts independent ones.
 */
export function createRng(...parts: readonly (string | number)[]): Rng {
  const next = sfc32(...hashToState(parts.map(String).join('\u0000')));
  for (let i = 0; i < WARM_UP_DRAWS; i++) next();
  return {
    next,
    uniform: (min, max) => min + (max - min) * next(),
    int: (min, max) => min + Math.floor((max - min + 1) * next()),
    // Box-Muller; 1 - next() is in (0, 1], so the logarithm is finite.
    normal: () => Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next()),
    exponential: (mean) => -mean * Math.log(1 - next()),
    pick<T>(items: readonly T[]): T {
      if (items.length === 0) throw new RangeError('pick from an empty list');
      return items[Math.floor(items.length * next())] as T;
    },
  };
}

/**
 * Picks exactly `round(ratio * n)` of the indices 0..n-1 (at least one when ratio > 0) with
 * a seeded shuffle, so "10 % of the devices" is the same devices on every run.
 */
export function selectIndices(n: number, ratio: number, rng: Rng): Set<number> {
  if (ratio <= 0 || n === 0) return new Set();
  const k = Math.min(n, Math.max(1, Math.round(ratio * n)));
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    [order[i], order[j]] = [order[j] as number, order[i] as number];
  }
  return new Set(order.slice(0, k));
}
