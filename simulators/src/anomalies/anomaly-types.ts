/** The anomaly types the simulator injects; ground truth names them with these strings. */
export const AnomalyType = {
  /** A few samples far off the normal value, then back. */
  spike: 'spike',
  /** An offset growing linearly to the magnitude over the episode (a sensor losing calibration). */
  drift: 'drift',
  /** The sensor repeats the last value it read before the episode. */
  stuck: 'stuck',
  /** Extra Gaussian noise with a standard deviation of magnitude x spread. */
  noiseBurst: 'noise-burst',
  /** Vibration climbs to the magnitude over the first 30 % of the episode and stays there (a bearing going bad). */
  vibrationRise: 'vibration-rise',
} as const;
export type AnomalyType = (typeof AnomalyType)[keyof typeof AnomalyType];
export const ANOMALY_TYPES = Object.values(AnomalyType) as [AnomalyType, ...AnomalyType[]];

/** Per-type defaults: durations in seconds, magnitudes in multiples of the metric's spread. */
export interface AnomalyTypeDefaults {
  readonly durationS: readonly [number, number];
  readonly magnitude: readonly [number, number];
  /** Only these metrics; undefined: the profile's anomaly metrics. */
  readonly metrics?: readonly string[];
}

export const DEFAULT_ANOMALY_TYPES: Readonly<Record<AnomalyType, AnomalyTypeDefaults>> = {
  spike: { durationS: [1, 3], magnitude: [6, 10] },
  drift: { durationS: [60, 300], magnitude: [3, 6] },
  stuck: { durationS: [30, 120], magnitude: [0, 0] },
  'noise-burst': { durationS: [15, 60], magnitude: [3, 5] },
  'vibration-rise': { durationS: [60, 300], magnitude: [4, 8], metrics: ['vibration'] },
};

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
