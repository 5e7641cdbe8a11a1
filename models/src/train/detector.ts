import {
  createFeatureWindow,
  ErrorCode,
  FeatureSpecSchema,
  OutpostError,
  type BaselineSpec,
  type FeatureSpec,
  type TestVector,
  type WindowFeature,
} from '@outpost/shared';
import { scoreMaxReference } from '../onnx/max-score-model.js';
import type { TelemetryRecord } from './records.js';

/**
 * The per-kind anomaly detector: per-device baselines in the shared feature code (baseline.ts)
 * turn each device's telemetry into evidence, one number per metric and detector, and the ONNX
 * graph (max-score-model.ts) scales every detector so that 1 is where its normal traffic ends
 * and takes the strongest. This file learns what is learnt from normal training traffic:
 * which metrics follow the others with a lag, where each detector's normal traffic ends
 * (normalisation and tail weights), and the self-test vectors. The threshold is chosen later,
 * on held-out traffic (calibrate.ts).
 */

/** A kind of device and its model: a device goes to the model whose metrics it sends (routeDevice). */
export interface DeviceKind {
  /** The simulator profile the kind stands for. */
  kind: string;
  /** Model name. */
  model: string;
  metrics: readonly string[];
}

/** The kinds models are built for. */
export const DEVICE_KINDS: readonly DeviceKind[] = [
  { kind: 'machine', model: 'anomaly-machine', metrics: ['temperature', 'vibration', 'pressure', 'current'] },
  { kind: 'env-sensor', model: 'anomaly-env-sensor', metrics: ['temperature', 'humidity'] },
];

/**
 * Every detector, per metric: a spike or dropout (jump), a noise burst (noise), a stuck sensor
 * (run), the ramp of a drift (trend), a level off the device's baseline over about 2 minutes,
 * 30 minutes and 2 hours (level0-2: a drift's hold, a slow drift), and a metric leaving the
 * relation the device's other metrics predict (residual).
 */
export const DETECTOR_FEATURES: readonly WindowFeature[] = ['jump', 'noise', 'run', 'trend', 'level0', 'level1', 'level2', 'residual'];
/** Detectors whose low values are no evidence (a quiet window is not a spike). */
export const ONE_SIDED_FEATURES: readonly WindowFeature[] = ['jump', 'noise', 'run'];

/** Window and baseline settings (in samples; the simulator sends 1 per second). */
export const DEFAULT_WINDOW_SIZE = 32;
export const DEFAULT_HOP_SIZE = 4;
export const DEFAULT_BASELINE: Omit<BaselineSpec, 'regression'> & { regression: Omit<NonNullable<BaselineSpec['regression']>, 'laggedMetrics'> } = {
  noiseWarmupSamples: 600,
  noiseTimeConstant: 1800,
  warmupSamples: 1800,
  levelTimeConstants: [120, 1800, 7200],
  regression: { timeConstant: 14400, lagTimeConstant: 600, fitAfterSamples: 120 },
  clip: 3,
  varianceClip: 2,
  varianceSlowdown: 4,
  freezeAbove: 3,
  freezeRate: 0.001,
};
/** Where a detector's normal traffic ends: this quantile of the training windows (and 1 - it below). */
export const DEFAULT_TAIL_QUANTILE = 0.9999;
/** A metric is predicted from the others' lagged means too when that cuts its residual to this share or less. */
export const DEFAULT_LAG_GAIN = 0.8;
export const DEFAULT_DETECTOR_TEST_VECTORS = 16;
/** Fewer training windows than this cannot place a 1-in-10,000 tail. */
export const DEFAULT_MIN_TRAINING_WINDOWS = 20_000;

/** One device's samples of a kind's metrics, in order. */
export interface DeviceSeries {
  deviceId: string;
  /** series[m][t]: metric m (the kind's order) at sample t. */
  series: Float64Array[];
  length: number;
}

/**
 * Splits recorded traffic by kind: a device belongs to the kind whose metrics its first message
 * carries (the most specific one); samples lacking one of the kind's metrics are skipped, as the
 * agent's window skips them.
 */
export async function collectSeries(records: Iterable<TelemetryRecord> | AsyncIterable<TelemetryRecord>, kinds: readonly DeviceKind[] = DEVICE_KINDS): Promise<Map<DeviceKind, DeviceSeries[]>> {
  const growable = new Map<string, { kind: DeviceKind | undefined; values: number[][] }>();
  for await (const record of records) {
    let device = growable.get(record.deviceId);
    if (device === undefined) {
      const names = new Set(Object.keys(record.metrics));
      let kind: DeviceKind | undefined;
      for (const k of kinds) if (k.metrics.every((m) => names.has(m)) && (kind === undefined || k.metrics.length > kind.metrics.length)) kind = k;
      device = { kind, values: (kind?.metrics ?? []).map(() => []) };
      growable.set(record.deviceId, device);
    }
    const kind = device.kind;
    if (kind === undefined) continue;
    if (!kind.metrics.every((m) => Number.isFinite(record.metrics[m]))) continue;
    kind.metrics.forEach((m, i) => device.values[i]!.push(record.metrics[m]!));
  }
  const byKind = new Map<DeviceKind, DeviceSeries[]>(kinds.map((k) => [k, []]));
  for (const [deviceId, { kind, values }] of growable) {
    if (kind === undefined) continue;
    byKind.get(kind)!.push({ deviceId, series: values.map((v) => Float64Array.from(v)), length: values[0]?.length ?? 0 });
  }
  return byKind;
}

/** The samples of a series as telemetry metrics (for the shared feature window). */
function* samplesOf(device: DeviceSeries, metrics: readonly string[]): Generator<Record<string, number>> {
  const sample: Record<string, number> = {};
  for (let t = 0; t < device.length; t++) {
    metrics.forEach((m, i) => (sample[m] = device.series[i]![t]!));
    yield sample;
  }
}

/** Least-squares residual RMS of y on the columns of x (with an intercept). */
function residualRms(x: readonly Float64Array[], y: Float64Array): number {
  const q = x.length + 1;
  const n = y.length;
  const a = Array.from({ length: q }, () => new Float64Array(q + 1));
  const col = (j: number, t: number): number => (j === 0 ? 1 : x[j - 1]![t]!);
  for (let t = 0; t < n; t++) {
    for (let i = 0; i < q; i++) {
      const ci = col(i, t);
      a[i]![q] = a[i]![q]! + ci * y[t]!;
      for (let j = 0; j < q; j++) a[i]![j] = a[i]![j]! + ci * col(j, t);
    }
  }
  for (let i = 1; i < q; i++) a[i]![i] = a[i]![i]! * (1 + 1e-9) + 1e-12;
  for (let c = 0; c < q; c++) {
    let pivot = c;
    for (let r = c + 1; r < q; r++) if (Math.abs(a[r]![c]!) > Math.abs(a[pivot]![c]!)) pivot = r;
    [a[c], a[pivot]] = [a[pivot]!, a[c]!];
    for (let r = c + 1; r < q; r++) {
      const f = a[c]![c]! === 0 ? 0 : a[r]![c]! / a[c]![c]!;
      for (let j = c; j <= q; j++) a[r]![j] = a[r]![j]! - f * a[c]![j]!;
    }
  }
  const beta = new Float64Array(q);
  for (let r = q - 1; r >= 0; r--) {
    let s = a[r]![q]!;
    for (let j = r + 1; j < q; j++) s -= a[r]![j]! * beta[j]!;
    beta[r] = a[r]![r]! === 0 ? 0 : s / a[r]![r]!;
  }
  let sum = 0;
  for (let t = 0; t < n; t++) {
    let pred = 0;
    for (let j = 0; j < q; j++) pred += beta[j]! * col(j, t);
    sum += (y[t]! - pred) ** 2;
  }
  return Math.sqrt(sum / n);
}

/** For each metric: the median over devices of residual RMS with / without the others' lagged means. */
export function lagGains(devices: readonly DeviceSeries[], metrics: readonly string[], windowSize: number, lagTimeConstant: number, skipSamples: number): number[] {
  const k = metrics.length;
  const keep = Math.exp(-1 / lagTimeConstant);
  const perMetric: number[][] = metrics.map(() => []);
  for (const device of devices) {
    // Window means every 4th sample after the skip, and their low-pass filtered copies.
    const means: number[][] = metrics.map(() => []);
    const lagged: number[][] = metrics.map(() => []);
    const lowPass = new Float64Array(k);
    const sums = new Float64Array(k);
    for (let t = 0; t < device.length; t++) {
      for (let m = 0; m < k; m++) {
        sums[m] = sums[m]! + device.series[m]![t]!;
        if (t >= windowSize) sums[m] = sums[m]! - device.series[m]![t - windowSize]!;
      }
      if (t < windowSize - 1) continue;
      for (let m = 0; m < k; m++) {
        const mean = sums[m]! / windowSize;
        lowPass[m] = t === windowSize - 1 ? mean : keep * lowPass[m]! + (1 - keep) * mean;
        if (t >= skipSamples && t % 4 === 0) {
          means[m]!.push(mean);
          lagged[m]!.push(lowPass[m]!);
        }
      }
    }
    if (means[0]!.length < 100) continue;
    for (let i = 0; i < k; i++) {
      const others = metrics.map((_, j) => j).filter((j) => j !== i);
      const y = Float64Array.from(means[i]!);
      const plain = residualRms(others.map((j) => Float64Array.from(means[j]!)), y);
      const withLag = residualRms([...others.map((j) => Float64Array.from(means[j]!)), ...others.map((j) => Float64Array.from(lagged[j]!))], y);
      perMetric[i]!.push(plain > 0 ? withLag / plain : 1);
    }
  }
  return perMetric.map((ratios) => {
    if (ratios.length === 0) return 1;
    const sorted = ratios.sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)]!;
  });
}

export interface DetectorTrainOptions {
  windowSize?: number;
  hopSize?: number;
  baseline?: typeof DEFAULT_BASELINE;
  tailQuantile?: number;
  lagGain?: number;
  testVectorCount?: number;
  /** Default DEFAULT_MIN_TRAINING_WINDOWS. */
  minTrainingWindows?: number;
}

/** Where one detector's normal traffic lies (raw feature values). */
export interface FeatureTail {
  name: string;
  low: number;
  median: number;
  high: number;
}

export interface TrainedDetector {
  kind: DeviceKind;
  /** With the fitted normalisation: what goes into the manifest. */
  featureSpec: FeatureSpec;
  /** Weights of the ONNX graph (buildMaxScoreModel). */
  upper: number[];
  lower: number[];
  laggedMetrics: string[];
  /** Per metric, residual RMS with the lagged predictors over without (median over devices). */
  lagGains: Record<string, number>;
  tails: FeatureTail[];
  trainingDevices: string[];
  trainingWindows: number;
  /** Normalised rows with their reference scores, spread over the training score range. */
  testVectors: TestVector[];
  /** Training windows' scores: median, 99.99th percentile, highest. */
  scoreQuantiles: { p50: number; p9999: number; max: number };
}

function quantileSorted(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/**
 * Trains a kind's detector on normal traffic of its devices:
 * 1. lagged metrics: those whose window mean the others' lagged means predict markedly better
 *    (residual RMS ratio <= lagGain, median over devices; a temperature lagging the load);
 * 2. every device through the shared feature window of the spec (baselines included), one
 *    window per hop, from the sample its levels are warm;
 * 3. per detector, its median and its `tailQuantile` / 1 - `tailQuantile` values: the
 *    normalisation centers each detector on its median and scales it by the wider tail; the
 *    graph's weights make each tail exactly 1 (0 below for one-sided detectors);
 * 4. test vectors: training rows spread from the lowest score to the highest, with their
 *    reference scores.
 * MODEL_INVALID when the traffic gives too few warm windows (minTrainingWindows, default 20,000).
 */
export function trainDetector(kind: DeviceKind, devices: readonly DeviceSeries[], options: DetectorTrainOptions = {}): TrainedDetector {
  const windowSize = options.windowSize ?? DEFAULT_WINDOW_SIZE;
  const hopSize = options.hopSize ?? DEFAULT_HOP_SIZE;
  const base = options.baseline ?? DEFAULT_BASELINE;
  const tailQuantile = options.tailQuantile ?? DEFAULT_TAIL_QUANTILE;
  const metrics = kind.metrics;
  const k = metrics.length;
  const warmSamples = base.warmupSamples + base.regression.fitAfterSamples + windowSize;

  const gains = k >= 2 ? lagGains(devices, metrics, windowSize, base.regression.lagTimeConstant, warmSamples) : metrics.map(() => 1);
  const laggedMetrics = metrics.filter((_, i) => gains[i]! <= (options.lagGain ?? DEFAULT_LAG_GAIN));
  const features = [...DETECTOR_FEATURES].filter((f) => !(k < 2 && f === 'residual'));
  const n = k * features.length;
  const baseline: BaselineSpec = { ...base, levelTimeConstants: [...base.levelTimeConstants], regression: { ...base.regression, laggedMetrics } };
  const identity = FeatureSpecSchema.parse({ metrics, features, windowSize, hopSize, normalisation: { center: new Array<number>(n).fill(0), scale: new Array<number>(n).fill(1) }, baseline });

  const rows: Float64Array[] = [];
  for (const device of devices) {
    const window = createFeatureWindow(identity);
    let t = 0;
    for (const sample of samplesOf(device, metrics)) {
      t++;
      if (window.add(sample) && t >= warmSamples) rows.push(window.rawFeatures(new Float64Array(n)));
    }
  }
  const needed = options.minTrainingWindows ?? DEFAULT_MIN_TRAINING_WINDOWS;
  if (rows.length < needed) {
    throw new OutpostError(
      ErrorCode.MODEL_INVALID,
      `not enough training windows for ${kind.model}: ${rows.length} from ${devices.length} devices after each device's ${warmSamples}-sample warm-up, need ${needed} (record more or longer normal traffic of ${kind.kind} devices)`,
      { details: { rows: rows.length, needed } },
    );
  }

  const tails: FeatureTail[] = [];
  const center: number[] = [];
  const scale: number[] = [];
  const upper: number[] = [];
  const lower: number[] = [];
  for (let j = 0; j < n; j++) {
    const sorted = Float64Array.from(rows, (r) => r[j]!).sort();
    const median = quantileSorted(sorted, 0.5);
    const high = quantileSorted(sorted, tailQuantile);
    const low = quantileSorted(sorted, 1 - tailQuantile);
    const feature = features[j % features.length]!;
    const floor = 1e-6 * Math.max(1, Math.abs(median));
    const above = Math.max(high - median, floor);
    const below = Math.max(median - low, floor);
    const oneSided = ONE_SIDED_FEATURES.includes(feature);
    const s = oneSided ? above : Math.max(above, below);
    tails.push({ name: `${metrics[Math.floor(j / features.length)]}.${feature}`, low, median, high });
    center.push(median);
    scale.push(s);
    upper.push(s / above);
    lower.push(oneSided ? 0 : s / below);
  }
  const featureSpec = FeatureSpecSchema.parse({ ...identity, normalisation: { center, scale } });

  // Exactly the agent's arithmetic (features.ts): float64 (raw - center) / scale, stored as float32.
  const normalised = rows.map((raw) => Float32Array.from(raw, (v, i) => (v - center[i]!) / scale[i]!));
  const scores = normalised.map((row) => scoreMaxReference(row, upper, lower).score);
  const order = scores.map((_, i) => i).sort((a, b) => scores[a]! - scores[b]! || a - b);
  const count = options.testVectorCount ?? DEFAULT_DETECTOR_TEST_VECTORS;
  const picks = new Set<number>();
  for (let j = 0; j < Math.min(count, order.length); j++) picks.add(order[Math.round((j * (order.length - 1)) / Math.max(1, count - 1))]!);
  const sortedScores = Float64Array.from(order, (i) => scores[i]!);

  return {
    kind,
    featureSpec,
    upper,
    lower,
    laggedMetrics,
    lagGains: Object.fromEntries(metrics.map((m, i) => [m, gains[i]!])),
    tails,
    trainingDevices: devices.map((d) => d.deviceId),
    trainingWindows: rows.length,
    testVectors: [...picks].map((i) => ({ input: Array.from(normalised[i]!), expectedScore: scores[i]! })),
    scoreQuantiles: { p50: quantileSorted(sortedScores, 0.5), p9999: quantileSorted(sortedScores, 0.9999), max: sortedScores[sortedScores.length - 1]! },
  };
}

