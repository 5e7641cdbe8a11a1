import {
  createFeatureWindow,
  ErrorCode,
  featureLength,
  FeatureSpecSchema,
  OutpostError,
  type FeatureSpec,
  type TestVector,
  type WindowFeature,
} from '@outpost/shared';
import { scorePcaReference } from '../onnx/pca-model.js';
import { chooseComponentCount, columnMeans, covarianceMatrix, jacobiEigen, scoringComponents, type ComponentWeighting } from './pca.js';
import type { TelemetryRecord } from './records.js';

/** Which window features the model reads: the spec without its normalisation. */
export interface FeatureChoice {
  metrics: string[];
  features: WindowFeature[];
  windowSize: number;
  hopSize: number;
}

/**
 * The features of the default model, chosen for the simulator's `machine` profile (one message
 * per second) by evaluation on its labelled scenarios (see models/README.md):
 * - metrics: the four that anomalies hit;
 * - mean (level: vibration rise, drift), diffStd (sample-to-sample noise with the trend
 *   removed: 0 for a stuck sensor, large for a spike or a noise burst) and slope (drift);
 *   `std`, `min` and `max` were left out: the process's own trends make their normal
 *   spread heavy-tailed, which raised the threshold until stuck sensors went unseen;
 * - 32 samples (32 s): enough differences that a stuck sensor's diffStd of 0 stands far
 *   outside the normal noise floor; hop 4 gives a row every 4 s per device.
 */
export const DEFAULT_FEATURE_CHOICE: FeatureChoice = {
  metrics: ['temperature', 'vibration', 'pressure', 'current'],
  features: ['mean', 'diffStd', 'slope'],
  windowSize: 32,
  hopSize: 4,
};

/** Share of the normalised feature variance the principal components keep. */
export const DEFAULT_VARIANCE_RATIO = 0.95;
/** Quantile of the training rows' scores the threshold starts from ... */
export const DEFAULT_THRESHOLD_QUANTILE = 0.999;
/** ... times this margin: headroom for normal behaviour the training hour did not show. */
export const DEFAULT_THRESHOLD_MARGIN = 1.1;
export const DEFAULT_TEST_VECTOR_COUNT = 16;
export const DEFAULT_WEIGHTING: ComponentWeighting = 'balanced';
/** Fewer training windows than this many per feature cannot fit a covariance. */
const MIN_ROWS_PER_FEATURE = 10;

export interface TrainOptions {
  /** Default DEFAULT_FEATURE_CHOICE. */
  featureChoice?: FeatureChoice;
  /** Default DEFAULT_VARIANCE_RATIO (0.95). */
  varianceRatio?: number;
  /** Default DEFAULT_WEIGHTING (`balanced`, see ComponentWeighting). */
  weighting?: ComponentWeighting;
  /** Default DEFAULT_THRESHOLD_QUANTILE (0.999). */
  thresholdQuantile?: number;
  /** Default DEFAULT_THRESHOLD_MARGIN (1.1). */
  thresholdMargin?: number;
  /** Default DEFAULT_TEST_VECTOR_COUNT (16). */
  testVectorCount?: number;
}

export interface TrainedModel {
  /** The feature spec with the fitted normalisation: what goes into the manifest. */
  featureSpec: FeatureSpec;
  /** W^T (k rows of n) for buildPcaModel and scorePcaReference. */
  components: number[][];
  k: number;
  weighting: ComponentWeighting;
  /** Eigenvalues of the normalised feature covariance, descending. */
  eigenvalues: number[];
  /** Share of the variance the k principal directions hold. */
  explainedVariance: number;
  threshold: number;
  /** Training windows (hop 1) and devices they came from. */
  trainingRows: number;
  devices: number;
  /** Scores of the training windows. */
  scoreQuantiles: { p50: number; p99: number; p999: number; max: number };
  testVectors: TestVector[];
}

/** The q-quantile of sorted values (nearest rank). */
export function quantileOfSorted(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[index]!;
}

/** Population standard deviations of the columns, floored so every scale is positive. */
function columnScales(rows: readonly Float64Array[], mean: Float64Array): number[] {
  const n = mean.length;
  const squares = new Float64Array(n);
  for (const row of rows) {
    for (let i = 0; i < n; i++) squares[i] = squares[i]! + (row[i]! - mean[i]!) ** 2;
  }
  // A feature constant in training (e.g. a quantised metric's std) still needs a finite scale;
  // any change of it will then score high, which is what an unseen change should do.
  return Array.from(squares, (s, i) => Math.max(Math.sqrt(s / rows.length), 1e-6 * Math.max(1, Math.abs(mean[i]!))));
}

/**
 * Collects the raw features of every window of every device (hop 1: training sees every
 * window position the agent could, whatever its hop phase).
 */
async function collectRawRows(records: Iterable<TelemetryRecord> | AsyncIterable<TelemetryRecord>, choice: FeatureChoice): Promise<{ rows: Float64Array[]; devices: number }> {
  const n = choice.metrics.length * choice.features.length;
  const identity = FeatureSpecSchema.parse({
    ...choice,
    hopSize: 1,
    normalisation: { center: new Array<number>(n).fill(0), scale: new Array<number>(n).fill(1) },
  });
  const windows = new Map<string, ReturnType<typeof createFeatureWindow>>();
  const rows: Float64Array[] = [];
  for await (const record of records) {
    let window = windows.get(record.deviceId);
    if (window === undefined) {
      window = createFeatureWindow(identity);
      windows.set(record.deviceId, window);
    }
    if (window.add(record.metrics)) rows.push(window.rawFeatures(new Float64Array(n)));
  }
  return { rows, devices: windows.size };
}

/**
 * Trains the default anomaly model from normal traffic:
 * 1. per device, the shared feature windows (hop 1) give raw feature rows;
 * 2. center and scale are the rows' mean and population std per feature;
 * 3. PCA of the normalised rows (covariance about 0, the model does not re-center;
 *    Jacobi eigen-decomposition); k = fewest components holding `varianceRatio` of the variance;
 * 4. scoring components per `weighting` (see ComponentWeighting);
 * 5. threshold = the `thresholdQuantile` of the training rows' scores x `thresholdMargin`;
 * 6. test vectors: `testVectorCount` training rows spread over the score range (lowest to
 *    highest), with their JavaScript-reference scores.
 * MODEL_INVALID when there are too few windows (fewer than 10 per feature).
 */
export async function trainFromRecords(records: Iterable<TelemetryRecord> | AsyncIterable<TelemetryRecord>, options: TrainOptions = {}): Promise<TrainedModel> {
  const choice = options.featureChoice ?? DEFAULT_FEATURE_CHOICE;
  const varianceRatio = options.varianceRatio ?? DEFAULT_VARIANCE_RATIO;
  const weighting = options.weighting ?? DEFAULT_WEIGHTING;
  const thresholdQuantile = options.thresholdQuantile ?? DEFAULT_THRESHOLD_QUANTILE;
  const thresholdMargin = options.thresholdMargin ?? DEFAULT_THRESHOLD_MARGIN;
  const testVectorCount = options.testVectorCount ?? DEFAULT_TEST_VECTOR_COUNT;
  const n = featureLength(choice);

  const { rows: rawRows, devices } = await collectRawRows(records, choice);
  const needed = MIN_ROWS_PER_FEATURE * n;
  if (rawRows.length < needed) {
    throw new OutpostError(ErrorCode.MODEL_INVALID, `not enough training windows: ${rawRows.length} from ${devices} devices, need at least ${needed} (${MIN_ROWS_PER_FEATURE} per feature) with every metric of ${choice.metrics.join(', ')}`, {
      details: { rows: rawRows.length, needed },
    });
  }

  const center = columnMeans(rawRows, n);
  const scale = columnScales(rawRows, center);
  const featureSpec = FeatureSpecSchema.parse({ ...choice, normalisation: { center: Array.from(center), scale } });
  // Exactly the agent's arithmetic (features.ts): float64 (raw - center) / scale, stored as float32.
  const rows = rawRows.map((raw) => Float32Array.from(raw, (v, i) => (v - center[i]!) / scale[i]!));

  const eigen = jacobiEigen(covarianceMatrix(rows, n, new Float64Array(n)));
  const k = chooseComponentCount(eigen.values, varianceRatio);
  const components = scoringComponents(eigen, k, weighting);
  const total = eigen.values.reduce((s, x) => s + Math.max(0, x), 0);
  const explainedVariance = total > 0 ? eigen.values.slice(0, k).reduce((s, x) => s + Math.max(0, x), 0) / total : 0;

  const scores = rows.map((row) => scorePcaReference(row, components));
  const order = scores.map((_, i) => i).sort((a, b) => scores[a]! - scores[b]! || a - b);
  const sorted = Float64Array.from(order, (i) => scores[i]!);
  const threshold = quantileOfSorted(sorted, thresholdQuantile) * thresholdMargin;

  const picks = new Set<number>();
  for (let j = 0; j < Math.min(testVectorCount, rows.length); j++) {
    picks.add(order[Math.round((j * (order.length - 1)) / Math.max(1, testVectorCount - 1))]!);
  }
  const testVectors = [...picks].map((i) => ({ input: Array.from(rows[i]!), expectedScore: scores[i]! }));

  return {
    featureSpec,
    components,
    k,
    weighting,
    eigenvalues: eigen.values,
    explainedVariance,
    threshold,
    trainingRows: rows.length,
    devices,
    scoreQuantiles: {
      p50: quantileOfSorted(sorted, 0.5),
      p99: quantileOfSorted(sorted, 0.99),
      p999: quantileOfSorted(sorted, 0.999),
      max: sorted[sorted.length - 1]!,
    },
    testVectors,
  };
}
