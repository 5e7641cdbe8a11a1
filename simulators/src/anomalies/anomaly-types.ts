/**
 * The anomaly types the simulator injects; ground truth names them with these strings. Each is
 * a fault as it shows in the field, on one metric of one device.
 */
export const AnomalyType = {
  /** A few samples far off the normal value, then back. */
  spike: 'spike',
  /**
   * A sensor losing calibration: an offset growing linearly to the magnitude over the first
   * `rampFraction` of the episode, then held. It does not step back while the episode lasts; at
   * the episode's end the sensor is recalibrated (back to normal), or with `persist` never: the
   * episode then lasts until the device stops sending.
   */
  drift: 'drift',
  /**
   * A slow calibration drift: the offset grows by `magnitude` x the metric's spread per minute
   * for the whole episode (no hold, no step back while it lasts); `persist` as for drift.
   */
  slowDrift: 'slow-drift',
  /** The sensor repeats the last value it read before the episode. */
  stuck: 'stuck',
  /** Extra Gaussian noise with a standard deviation of magnitude x spread. */
  noiseBurst: 'noise-burst',
  /** Vibration climbs to the magnitude over the first 30 % of the episode and stays there (a bearing going bad). */
  vibrationRise: 'vibration-rise',
  /**
   * A loose connection: the reading drops to 0 (clamped to the metric's range) for bursts of
   * `burstS` seconds, separated by `gapS` seconds of normal readings. The episode starts with
   * the first dropped sample and ends with the last one.
   */
  dropout: 'dropout',
} as const;
export type AnomalyType = (typeof AnomalyType)[keyof typeof AnomalyType];
export const ANOMALY_TYPES = Object.values(AnomalyType) as [AnomalyType, ...AnomalyType[]];

/** Per-type defaults: durations in seconds, magnitudes in multiples of the metric's spread. */
export interface AnomalyTypeDefaults {
  readonly durationS: readonly [number, number];
  /** Multiples of the metric's spread; for slow-drift, multiples of the spread per minute. */
  readonly magnitude: readonly [number, number];
  /** Only these metrics; undefined: the profile's anomaly metrics. */
  readonly metrics?: readonly string[];
}

export const DEFAULT_ANOMALY_TYPES: Readonly<Record<AnomalyType, AnomalyTypeDefaults>> = {
  spike: { durationS: [1, 3], magnitude: [6, 10] },
  drift: { durationS: [60, 300], magnitude: [3, 6] },
  'slow-drift': { durationS: [1800, 3600], magnitude: [0.2, 0.5] },
  stuck: { durationS: [5, 120], magnitude: [0, 0] },
  'noise-burst': { durationS: [15, 60], magnitude: [3, 5] },
  'vibration-rise': { durationS: [60, 300], magnitude: [4, 8], metrics: ['vibration'] },
  dropout: { durationS: [30, 180], magnitude: [0, 0] },
};

/** Share of a drift episode its ramp takes by default; the rest is the hold. */
export const DEFAULT_DRIFT_RAMP_FRACTION = 0.5;
/** A dropout burst lasts this many seconds (uniform) ... */
export const DEFAULT_DROPOUT_BURST_S: readonly [number, number] = [1, 3];
/** ... and the readings are normal this many seconds between two bursts. */
export const DEFAULT_DROPOUT_GAP_S: readonly [number, number] = [2, 15];

/** Normal samples kept between two episodes of one device, so their windows never blend. */
export const DEFAULT_ANOMALY_MIN_GAP_S = 30;

/** One line of the ground-truth JSONL file (FIXED CONTRACT: models train and evaluate on it). */
export interface TruthLine {
  deviceId: string;
  type: AnomalyType;
  metric: string;
  /** Payload ts (device clock, epoch ms) of the first and last affected sample. */
  startTs: number;
  endTs: number;
  /** Device seq of the first and last affected sample. */
  startSeq: number;
  endSeq: number;
}

/** Serialises a truth line with its keys in the contract's order. */
export function formatTruthLine(line: TruthLine): string {
  return JSON.stringify({
    deviceId: line.deviceId,
    type: line.type,
    metric: line.metric,
    startTs: line.startTs,
    endTs: line.endTs,
    startSeq: line.startSeq,
    endSeq: line.endSeq,
  });
}
