import { ErrorCode, OutpostError } from '../errors.js';
import { createDeviceBaseline, type DeviceBaseline } from './baseline.js';
import { BASELINE_FEATURES, featureLength, type FeatureSpec, type WindowFeature } from './manifest.js';

/**
 * Window features: the ONE implementation used by training (models/) and by the agent's
 * inference stage, so a model sees at run time exactly the numbers it was trained on.
 *
 * Semantics (FeatureSpecSchema): per device, keep the last `windowSize` samples of every metric
 * in `spec.metrics`; a sample counts only when it carries all of them. Once `windowSize`
 * samples are there, and then every `hopSize` samples, a row is due: for each metric in order
 * and each feature in order the feature value, normalised as `(value - center[i]) / scale[i]`.
 *
 * Definitions, over the window's samples x_0 (oldest) .. x_{W-1} (newest):
 * - mean, min, max, last (= x_{W-1});
 * - std: population standard deviation, sqrt(sum (x_i - mean)^2 / W);
 * - slope: least-squares slope of x against the sample index i, per sample:
 *   sum (i - ibar)(x_i - mean) / sum (i - ibar)^2; 0 when W = 1;
 * - diffStd: population std of the W - 1 differences d_i = x_i - x_{i-1}; 0 when W = 1;
 * - run: the longest run of equal consecutive values (1 when no two neighbours are equal).
 *
 * The features in BASELINE_FEATURES (jump, noise, trend, level0-2, residual) also read the
 * device's own history: with `spec.baseline` every window keeps a per-device baseline
 * (baseline.ts) that every sample updates, and those features come from it.
 *
 * Everything is computed in float64 over the window (two passes, no running sums, so nothing
 * drifts over millions of samples); only the normalised output row is float32, the model's
 * input type.
 */

/** A telemetry message's metrics, as `TelemetrySchema` validated them. */
export type MetricValues = Readonly<Record<string, number>>;

/** One device's sliding window over the spec's metrics. */
export interface FeatureWindow {
  /**
   * Adds one sample. A sample without every metric of the spec (or with a non-finite value)
   * is ignored and does not advance the window. Returns true when this sample makes a row
   * due; read it with `row()` or `rawFeatures()` before the next `add`.
   */
  add(metrics: MetricValues): boolean;
  /** `add`, then the normalised row (a new Float32Array) when one is due, else undefined. */
  push(metrics: MetricValues): Float32Array | undefined;
  /** The normalised row of the current window; a new Float32Array of `featureLength(spec)`. */
  row(): Float32Array;
  /** The raw (not normalised) features of the current window, written into `out` (float64). */
  rawFeatures(out?: Float64Array): Float64Array;
  /** Complete samples added so far. */
  readonly sampleCount: number;
  /** Forgets every sample (e.g. after a device gap or a model swap with another spec). */
  reset(): void;
}

/** The window geometry and feature list of a spec, checked once. */
interface ResolvedLayout {
  metrics: readonly string[];
  features: readonly WindowFeature[];
  windowSize: number;
  hopSize: number;
  center: Float64Array;
  scale: Float64Array;
  length: number;
  /** sum over i of (i - ibar)^2 for i = 0..W-1; 0 when W = 1. */
  indexVariance: number;
  needsDiffs: boolean;
  needsRun: boolean;
  /** Positions (metric-major) of the baseline features in the row, and which feature each is. */
  baselineSlots: readonly { offset: number; feature: WindowFeature }[];
}

function resolveLayout(spec: FeatureSpec): ResolvedLayout {
  const length = featureLength(spec);
  const { center, scale } = spec.normalisation;
  // The zod schema checks this too; a hand-built spec must not silently produce NaN rows.
  if (center.length !== length || scale.length !== length) {
    throw new OutpostError(ErrorCode.MODEL_INVALID, `featureSpec.normalisation: center and scale must hold ${length} values (metrics x features)`);
  }
  if (!scale.every((s) => Number.isFinite(s) && s > 0)) {
    throw new OutpostError(ErrorCode.MODEL_INVALID, 'featureSpec.normalisation.scale: every value must be a positive finite number');
  }
  const windowSize = spec.windowSize;
  return {
    metrics: [...spec.metrics],
    features: [...spec.features],
    windowSize,
    hopSize: spec.hopSize,
    center: Float64Array.from(center),
    scale: Float64Array.from(scale),
    length,
    indexVariance: (windowSize * (windowSize * windowSize - 1)) / 12,
    needsDiffs: spec.features.includes('diffStd'),
    needsRun: spec.features.includes('run'),
    baselineSlots: spec.features.flatMap((feature, f) => (BASELINE_FEATURES.includes(feature) ? [{ offset: f, feature }] : [])),
  };
}

/**
 * Computes the features of one metric's window into `out` at `offset`, in the order of
 * `layout.features`. The window is `ring` read from `start` (oldest) wrapping around, so the
 * streaming window needs no copy; a plain array is the case `start = 0`.
 */
function computeMetricFeatures(layout: ResolvedLayout, ring: Float64Array, start: number, out: Float64Array, offset: number): void {
  const w = layout.windowSize;
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  for (let k = 0; k < w; k++) {
    const v = ring[(start + k) % w]!;
    sum += v;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const mean = sum / w;
  const indexMean = (w - 1) / 2;
  let squares = 0;
  let cross = 0;
  for (let k = 0; k < w; k++) {
    const d = ring[(start + k) % w]! - mean;
    squares += d * d;
    cross += (k - indexMean) * d;
  }
  const last = ring[(start + w - 1) % w]!;
  const features = layout.features;
  let diffVariance = 0;
  if (layout.needsDiffs && w > 1) {
    // Mean of the differences telescopes to (last - first) / (W - 1); then a second pass.
    const meanDiff = (last - ring[start % w]!) / (w - 1);
    let previous = ring[start % w]!;
    for (let k = 1; k < w; k++) {
      const v = ring[(start + k) % w]!;
      const d = v - previous - meanDiff;
      diffVariance += d * d;
      previous = v;
    }
    diffVariance /= w - 1;
  }
  let longestRun = 1;
  if (layout.needsRun) {
    let run = 1;
    let previous = ring[start % w]!;
    for (let k = 1; k < w; k++) {
      const v = ring[(start + k) % w]!;
      run = v === previous ? run + 1 : 1;
      if (run > longestRun) longestRun = run;
      previous = v;
    }
  }
  for (let f = 0; f < features.length; f++) {
    let value: number;
    switch (features[f]) {
      case 'mean':
        value = mean;
        break;
      case 'std':
        value = Math.sqrt(squares / w);
        break;
      case 'min':
        value = min;
        break;
      case 'max':
        value = max;
        break;
      case 'last':
        value = last;
        break;
      case 'slope':
        value = layout.indexVariance === 0 ? 0 : cross / layout.indexVariance;
        break;
      case 'diffStd':
        value = Math.sqrt(diffVariance);
        break;
      case 'run':
        value = longestRun;
        break;
      default:
        // Baseline features: filled in from the device's baseline by the caller.

        value = NaN;
    }
    out[offset + f] = value;
  }
}

function normalise(layout: ResolvedLayout, raw: Float64Array): Float32Array {
  const row = new Float32Array(layout.length);
  for (let i = 0; i < layout.length; i++) row[i] = (raw[i]! - layout.center[i]!) / layout.scale[i]!;
  return row;
}

/**
 * Creates one device's sliding feature window for `spec` (see the module comment for the
 * exact semantics). Memory: one float64 ring of `windowSize` per metric; `add` allocates
 * nothing, `row()` allocates only its output.
 */
export function createFeatureWindow(spec: FeatureSpec): FeatureWindow {
  const layout = resolveLayout(spec);
  const { metrics, windowSize, hopSize } = layout;
  const rings = metrics.map(() => new Float64Array(windowSize));
  const baseline = createBaselineFor(spec, layout);
  const scratch = new Float64Array(layout.length);
  // Index in every ring where the next sample goes; once full it is also the oldest sample.
  let next = 0;
  let sampleCount = 0;

  const add = (values: MetricValues): boolean => {
    for (let m = 0; m < metrics.length; m++) {
      const v = values[metrics[m]!];
      if (typeof v !== 'number' || !Number.isFinite(v)) return false;
    }
    for (let m = 0; m < metrics.length; m++) rings[m]![next] = values[metrics[m]!]!;
    const newest = next;
    next = next + 1 === windowSize ? 0 : next + 1;
    sampleCount++;
    baseline?.update(rings, newest, sampleCount);
    return sampleCount >= windowSize && (sampleCount - windowSize) % hopSize === 0;
  };

  const rawFeatures = (out: Float64Array = new Float64Array(layout.length)): Float64Array => {
    if (sampleCount < windowSize) {
      throw new OutpostError(ErrorCode.MODEL_INVALID, `feature window holds ${sampleCount} of ${windowSize} samples; no row yet`);
    }
    const perMetric = layout.features.length;
    for (let m = 0; m < metrics.length; m++) computeMetricFeatures(layout, rings[m]!, next, out, m * perMetric);
    if (baseline !== undefined) fillBaselineFeatures(layout, baseline, out);
    return out;
  };

  const row = (): Float32Array => normalise(layout, rawFeatures(scratch));

  return {
    add,
    push: (values) => (add(values) ? row() : undefined),
    row,
    rawFeatures,
    get sampleCount() {
      return sampleCount;
    },
    reset: () => {
      next = 0;
      sampleCount = 0;
      baseline?.reset();
    },
  };
}

function createBaselineFor(spec: FeatureSpec, layout: ResolvedLayout): DeviceBaseline | undefined {
  return spec.baseline === undefined ? undefined : createDeviceBaseline(spec.baseline, layout.metrics, layout.windowSize);
}

function fillBaselineFeatures(layout: ResolvedLayout, baseline: DeviceBaseline, out: Float64Array): void {
  const perMetric = layout.features.length;
  for (let m = 0; m < layout.metrics.length; m++) {
    for (const slot of layout.baselineSlots) out[m * perMetric + slot.offset] = baseline.value(m, slot.feature);
  }
}

/** What `computeFeatures` returns: the model's row and the features before normalisation. */
export interface ComputedFeatures {
  row: Float32Array;
  raw: Float64Array;
}

/**
 * The features of one complete window given as its samples, oldest first (the last
 * `spec.windowSize` samples are used; every sample must carry every metric of the spec).
 * Same numbers as the streaming window; for tests, tools and one-off rows. With a baseline
 * spec, every sample given feeds a fresh baseline first (as a new device's window would).
 */
export function computeFeatures(samples: readonly MetricValues[], spec: FeatureSpec): ComputedFeatures {
  const layout = resolveLayout(spec);
  if (spec.baseline !== undefined) {
    const window = createFeatureWindow(spec);
    samples.forEach((sample, i) => {
      if (!window.add(sample) && window.sampleCount !== i + 1) {
        throw new OutpostError(ErrorCode.MODEL_INVALID, `computeFeatures: sample ${i} lacks a finite value of a metric of the spec`);
      }
    });
    if (window.sampleCount < layout.windowSize) throw new OutpostError(ErrorCode.MODEL_INVALID, `computeFeatures needs ${layout.windowSize} samples, got ${samples.length}`);
    const raw = window.rawFeatures();
    return { row: normalise(layout, raw), raw };
  }
  const w = layout.windowSize;
  if (samples.length < w) {
    throw new OutpostError(ErrorCode.MODEL_INVALID, `computeFeatures needs ${w} samples, got ${samples.length}`);
  }
  const window = samples.slice(samples.length - w);
  const raw = new Float64Array(layout.length);
  const perMetric = layout.features.length;
  layout.metrics.forEach((metric, m) => {
    const values = new Float64Array(w);
    window.forEach((sample, i) => {
      const v = sample[metric];
      if (typeof v !== 'number' || !Number.isFinite(v)) {
        throw new OutpostError(ErrorCode.MODEL_INVALID, `computeFeatures: sample ${i} has no finite value for metric ${metric}`);
      }
      values[i] = v;
    });
    computeMetricFeatures(layout, values, 0, raw, m * perMetric);
  });
  return { row: normalise(layout, raw), raw };
}

/**
 * Which model a device goes to, by the metrics of its first telemetry message: among the models
 * whose every feature metric the device sends, the one reading the most metrics (the most
 * specific kind); the first of equals. Undefined: no model fits the device. The agent routes its
 * devices and the evaluation (models/) its traffic by this one rule.
 */
export function routeDevice<M extends { featureSpec: { readonly metrics: readonly string[] } }>(metricNames: readonly string[], models: readonly M[]): M | undefined {
  const names = new Set(metricNames);
  let best: M | undefined;
  for (const model of models) {
    if (!model.featureSpec.metrics.every((m) => names.has(m))) continue;
    if (best === undefined || model.featureSpec.metrics.length > best.featureSpec.metrics.length) best = model;
  }
  return best;
}
