import type { Rng } from '../random/prng.js';

/** One metric a profile sends, with what anomalies and rounding need to know about it. */
export interface MetricSpec {
  readonly name: string;
  readonly unit: string;
  /** Decimals kept on the wire (the sensor's resolution). */
  readonly decimals: number;
  /**
   * Typical short-term variation of the metric in its unit. Anomaly magnitudes are given in
   * multiples of it, so "a spike of 8" means the same surprise on every metric.
   */
  readonly spread: number;
  /** Physical bounds; values (anomalous ones too) are clamped to them. */
  readonly min?: number;
  readonly max?: number;
}

export interface SignalInput {
  /** Per-device physical parameters (ambient, rated current...): drawn from the device id only. */
  readonly params: Rng;
  /** The sample-by-sample randomness (noise, load changes): drawn from seed + device id. */
  readonly noise: Rng;
  /** Seconds between two samples of this device (1 / rate). */
  readonly intervalS: number;
}

/**
 * The normal signal of one device: `next()` returns the unrounded values of sample 0, 1, 2...
 * in order. Values depend only on the inputs and the sample index, never on the clock.
 */
export interface SignalSource {
  next(): Record<string, number>;
}

/** A kind of device. */
export interface Profile {
  readonly name: string;
  readonly description: string;
  readonly metrics: readonly MetricSpec[];
  /** Metrics anomalies pick from when a scenario does not name one. */
  readonly anomalyMetrics: readonly string[];
  createSignal(input: SignalInput): SignalSource;
}

/**
 * First-order autoregressive noise (Ornstein-Uhlenbeck sampled every `dtS`): wanders with
 * standard deviation `sigma` around 0 and forgets its past over `tauS` seconds. The building
 * block of slow drift and load changes.
 */
export function createSlowNoise(rng: Rng, sigma: number, tauS: number, dtS: number): () => number {
  const keep = Math.exp(-dtS / tauS);
  const innovation = sigma * Math.sqrt(1 - keep * keep);
  let value = sigma * rng.normal();
  return () => {
    value = keep * value + innovation * rng.normal();
    return value;
  };
}

export function clamp(value: number, min = -Infinity, max = Infinity): number {
  return Math.min(max, Math.max(min, value));
}
