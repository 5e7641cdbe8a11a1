import type { BaselineSpec, WindowFeature } from './manifest.js';

/**
 * Per-device baselines: the state behind the features that compare a device with its own
 * history (BASELINE_FEATURES), updated with every sample the device's feature window takes.
 * Training, evaluation and the agent run this one implementation, so a model sees at run time
 * the numbers it was trained and judged on.
 *
 * Per sample (all time constants in samples, every average exponentially weighted, a running
 * average while it warms up):
 * 1. Typical change: the RMS of the sample-to-sample change x_t - x_{t-1} (time constant
 *    `noiseTimeConstant`) and of the window's least-squares slope (the same time constant).
 *    `jump` = largest |change| in the window / typical change; `noise` = ln(diffStd / typical
 *    change); `trend` = slope / typical slope. After warm-up, a value beyond 4 typical ones
 *    counts as 4, so a fault barely moves them.
 * 2. Regression (when configured and there are at least two metrics): each metric's window mean
 *    m_i is predicted from the other metrics' window means and, for `laggedMetrics`, from their
 *    low-pass filtered means too: pred_i = mu_i + beta' (v_-i - mu_-i), beta solving the
 *    weighted covariance of v = [window means, low-pass means] (time constant `timeConstant`,
 *    learnt from every 4th mean;
 *    ridge 1e-7 relative, solved again every 16 means). residual e_i = m_i - pred_i; the `residual` feature is e_i over the
 *    regression's residual standard deviation. While the device is anomalous (step 3) the
 *    covariance learns at `freezeRate` times its rate, so a fault is not learnt as normal. The
 *    low-pass filters read each metric cleaned of anomalies: its prediction plus its residual
 *    clipped to `clip` standard deviations of the slowest level baseline.
 * 3. Levels: for each of `levelTimeConstants`, a robust mean and variance of e_i (of m_i without
 *    a regression); `levelK` = (e_i - mean) / sqrt(variance), read before the update. Means move
 *    by deviations clipped at `clip` standard deviations, variances by deviations clipped at
 *    `varianceClip`, `varianceSlowdown` times more slowly: a lasting fault is absorbed, slowly,
 *    instead of locking the baseline. The device is anomalous for the next sample while a warm
 *    level exceeds `freezeAbove`.
 * Baseline features are 0 ("no evidence") until warm: jump, noise, trend after
 * `noiseWarmupSamples` samples; level and residual after `warmupSamples` window means (plus
 * `fitAfterSamples` with a regression).
 */

/** One device's baseline state for a spec's metrics (in the spec's order). */
export interface DeviceBaseline {
  /**
   * Takes the sample just added: `rings[m]` hold the last `windowSize` samples of metric m,
   * the newest at index `newest`; `count` is the number of samples added so far (>= 1).
   */
  update(rings: readonly Float64Array[], newest: number, count: number): void;
  /** The current value of a baseline feature for metric `m` (0 until warm). */
  value(m: number, feature: WindowFeature): number;
  reset(): void;
}

/** Most |change| or |slope| counts as this many typical ones once warm (robust RMS). */
const TYPICAL_CLIP = 4;
const RIDGE = 1e-7;
/**
 * The regressions are solved again every this many window means, not every sample, and the
 * covariance learns from every COVARIANCE_EVERY-th mean: both move with a time constant of hours,
 * and solves and p x p updates at every sample would be most of a sample's cost (about 1.7 µs
 * per sample for four metrics in all, row every 4th included, against 0.5 for anomaly-pca's
 * window features, CPU time here).
 */
const REFIT_EVERY = 16;
const COVARIANCE_EVERY = 4;
/** Number of low-pass filtered copies of the window means (one time constant). */
const LAGS = 1;

function rateOf(timeConstant: number): number {
  return 1 - Math.exp(-1 / timeConstant);
}

function clampAbs(x: number, limit: number): number {
  return x > limit ? limit : x < -limit ? -limit : x;
}

/**
 * Creates the baseline of one device. `windowSize` is the spec's (the window the means, slopes
 * and jumps are taken over); `metrics` the spec's metric names.
 */
export function createDeviceBaseline(spec: BaselineSpec, metrics: readonly string[], windowSize: number): DeviceBaseline {
  const k = metrics.length;
  const w = windowSize;
  const levels = spec.levelTimeConstants.length;
  const levelRates = spec.levelTimeConstants.map(rateOf);
  const noiseRate = rateOf(spec.noiseTimeConstant);
  const regression = k >= 2 ? spec.regression : undefined;
  // The low-pass columns only when a metric is predicted from them.
  const lagged = regression !== undefined && regression.laggedMetrics.some((m) => metrics.includes(m));
  const p = lagged ? k * (1 + LAGS) : k;
  // The covariance learns from every COVARIANCE_EVERY-th window mean, at the matching rate.
  const covRate = regression === undefined ? 0 : rateOf(regression.timeConstant / COVARIANCE_EVERY);
  const lagRate = regression === undefined ? 0 : rateOf(regression.lagTimeConstant);
  const fitAfter = regression?.fitAfterSamples ?? 0;
  const indexVariance = (w * (w * w - 1)) / 12;
  const indexMean = (w - 1) / 2;

  // Predictors of each metric: the other metrics' window means, and their low-pass means when lagged.
  const predictors: Int32Array[] = metrics.map((name, i) => {
    const lagged = regression?.laggedMetrics.includes(name) === true;
    const list: number[] = [];
    for (let q = 0; q < p; q++) if (q % k !== i && (q < k || lagged)) list.push(q);
    return Int32Array.from(list);
  });
  const maxPredictors = Math.max(0, ...predictors.map((l) => l.length));

  // State.
  const changeSquares = new Float64Array(k);
  const slopeSquares = new Float64Array(k);
  const jump = new Float64Array(k);
  const noise = new Float64Array(k);
  const trend = new Float64Array(k);
  const sums = new Float64Array(k);
  const weightedSums = new Float64Array(k);
  const nextEvicted = new Float64Array(k);
  /** The window of the last update, for jump and noise; shapeOf[m] = the update they were computed for. */
  let window: { rings: readonly Float64Array[]; newest: number; noiseWarm: boolean } | undefined;
  const shapeOf = new Float64Array(k).fill(-1);
  let updates = 0;
  const means = new Float64Array(k);
  const lowPass = new Float64Array(k);
  const v = new Float64Array(p);
  const covMean = new Float64Array(p);
  const cov = new Float64Array(p * p);
  const prediction = new Float64Array(k);
  const residual = new Float64Array(k);
  const residualZ = new Float64Array(k);
  const levelMean = new Float64Array(levels * k);
  const levelVariance = new Float64Array(levels * k);
  const levelZ = new Float64Array(levels * k);
  let meansSeen = 0;
  let anomalous = false;
  // Scratch for the regression solve, and each metric's last solution.
  const system = new Float64Array(maxPredictors * (maxPredictors + 1));
  const beta = new Float64Array(maxPredictors);
  const betas = metrics.map(() => new Float64Array(maxPredictors));
  const residualVariances = new Float64Array(k);

  const reset = (): void => {
    for (const a of [changeSquares, slopeSquares, jump, noise, trend, sums, weightedSums, nextEvicted, means, lowPass, v, covMean, cov, prediction, residual, residualZ, levelMean, levelVariance, levelZ, residualVariances, ...betas]) a.fill(0);
    shapeOf.fill(-1);
    window = undefined;
    meansSeen = 0;
    anomalous = false;
  };

  /** Solves the normal equations of metric i's regression into `beta`; returns the residual variance. */
  const fit = (i: number): number => {
    const idx = predictors[i]!;
    const q = idx.length;
    const cols = q + 1;
    for (let r = 0; r < q; r++) {
      const row = idx[r]! * p;
      for (let c = 0; c < q; c++) system[r * cols + c] = cov[row + idx[c]!]!;
      system[r * cols + r] = system[r * cols + r]! * (1 + RIDGE) + 1e-12;
      system[r * cols + q] = cov[row + i]!;
    }
    // Gaussian elimination with partial pivoting.
    for (let c = 0; c < q; c++) {
      let pivot = c;
      for (let r = c + 1; r < q; r++) if (Math.abs(system[r * cols + c]!) > Math.abs(system[pivot * cols + c]!)) pivot = r;
      if (pivot !== c) {
        for (let x = c; x < cols; x++) {
          const t = system[c * cols + x]!;
          system[c * cols + x] = system[pivot * cols + x]!;
          system[pivot * cols + x] = t;
        }
      }
      const diagonal = system[c * cols + c]!;
      if (diagonal === 0) continue;
      for (let r = c + 1; r < q; r++) {
        const f = system[r * cols + c]! / diagonal;
        if (f === 0) continue;
        for (let x = c; x < cols; x++) system[r * cols + x] = system[r * cols + x]! - f * system[c * cols + x]!;
      }
    }
    for (let r = q - 1; r >= 0; r--) {
      let sum = system[r * cols + q]!;
      for (let x = r + 1; x < q; x++) sum -= system[r * cols + x]! * beta[x]!;
      const diagonal = system[r * cols + r]!;
      beta[r] = diagonal === 0 ? 0 : sum / diagonal;
    }
    let explained = 0;
    for (let r = 0; r < q; r++) explained += beta[r]! * cov[idx[r]! * p + i]!;
    return cov[i * p + i]! - explained;
  };

  const update = (rings: readonly Float64Array[], newest: number, count: number): void => {
    // 1. Typical sample-to-sample change, and the window's jump and noise.
    if (count >= 2) {
      const changes = count - 1;
      const rate = Math.max(noiseRate, 1 / changes);
      const warm = changes > spec.noiseWarmupSamples;
      for (let m = 0; m < k; m++) {
        const ring = rings[m]!;
        const d = ring[newest]! - ring[(newest + w - 1) % w]!;
        const limit = TYPICAL_CLIP * TYPICAL_CLIP * changeSquares[m]!;
        changeSquares[m] = changeSquares[m]! + rate * ((warm ? Math.min(d * d, limit) : d * d) - changeSquares[m]!);
      }
    }
    if (count < w) return;
    const oldest = (newest + 1) % w;
    const noiseWarm = count > spec.noiseWarmupSamples;
    const slopeRate = Math.max(noiseRate, 1 / (count - w + 1));
    // Window sums kept up to date in O(1) (sum x_j and sum j x_j, j from the oldest), summed
    // afresh every windowSize samples so rounding cannot build up.
    const exact = (count - w) % w === 0;
    for (let m = 0; m < k; m++) {
      const ring = rings[m]!;
      if (exact) {
        let s1 = 0;
        let s2 = 0;
        for (let j = 0; j < w; j++) {
          const x = ring[(oldest + j) % w]!;
          s1 += x;
          s2 += j * x;
        }
        sums[m] = s1;
        weightedSums[m] = s2;
      } else {
        const evicted = nextEvicted[m]!;
        const added = ring[newest]!;
        weightedSums[m] = weightedSums[m]! - sums[m]! + evicted + (w - 1) * added;
        sums[m] = sums[m]! - evicted + added;
      }
      nextEvicted[m] = ring[oldest]!;
      means[m] = sums[m]! / w;
      const slope = indexVariance === 0 ? 0 : (weightedSums[m]! - indexMean * sums[m]!) / indexVariance;
      const typicalSlope = Math.sqrt(slopeSquares[m]!);
      trend[m] = noiseWarm && typicalSlope > 0 ? slope / typicalSlope : 0;
      const limit = TYPICAL_CLIP * TYPICAL_CLIP * slopeSquares[m]!;
      slopeSquares[m] = slopeSquares[m]! + slopeRate * ((noiseWarm ? Math.min(slope * slope, limit) : slope * slope) - slopeSquares[m]!);
    }
    // jump and noise read the whole window: computed when a row asks for them (windowShape).
    window = { rings, newest, noiseWarm };
    shapeOf.fill(-1);
    updates++;

    // 2. Regression.
    meansSeen++;
    const n = meansSeen;
    for (let m = 0; m < k; m++) v[m] = means[m]!;
    if (lagged) {
      if (n === 1) lowPass.set(means);
      for (let m = 0; m < k; m++) v[k + m] = lowPass[m]!;
    }
    const fitted = regression !== undefined && n > fitAfter;
    for (let i = 0; i < k; i++) {
      if (!fitted) {
        residual[i] = means[i]!;
        residualZ[i] = 0;
        continue;
      }
      const solution = betas[i]!;
      if ((n - fitAfter - 1) % REFIT_EVERY === 0) {
        residualVariances[i] = fit(i);
        solution.set(beta);
      }
      const residualVariance = residualVariances[i]!;
      const idx = predictors[i]!;
      let pred = covMean[i]!;
      for (let r = 0; r < idx.length; r++) pred += solution[r]! * (v[idx[r]!]! - covMean[idx[r]!]!);
      prediction[i] = pred;
      residual[i] = means[i]! - pred;
      const sd = Math.sqrt(Math.max(residualVariance, 1e-6 * cov[i * p + i]!, 1e-18));
      residualZ[i] = residual[i]! / sd;
    }
    const levelStart = n - fitAfter; // level baselines count from the first fitted residual
    if (regression !== undefined) {
      // Low-pass filters of each metric cleaned of anomalies (the slowest level baseline judges).
      const slowest = levels - 1;
      for (let m = 0; m < k && lagged; m++) {
        let cleaned = means[m]!;
        const sd = Math.sqrt(levelVariance[slowest * k + m]!);
        if (fitted && n >= spec.warmupSamples && levelStart > 1 && sd > 0) {
          const mu = levelMean[slowest * k + m]!;
          cleaned = prediction[m]! + mu + clampAbs(residual[m]! - mu, spec.clip * sd);
        }
        lowPass[m] = lowPass[m]! + lagRate * (cleaned - lowPass[m]!);
      }
      // Covariance of v (v holds the low-pass means from before this sample's update).
      const update = Math.floor((n - 1) / COVARIANCE_EVERY) + 1;
      if (n === 1) {
        covMean.set(v);
      } else if ((n - 1) % COVARIANCE_EVERY === 0) {
        const rate = n < spec.warmupSamples ? 1 / update : anomalous ? covRate * spec.freezeRate : covRate;
        for (let a = 0; a < p; a++) covMean[a] = covMean[a]! + rate * (v[a]! - covMean[a]!);
        for (let a = 0; a < p; a++) {
          const da = v[a]! - covMean[a]!;
          for (let b = a; b < p; b++) {
            const value = cov[a * p + b]! + rate * (da * (v[b]! - covMean[b]!) - cov[a * p + b]!);
            cov[a * p + b] = value;
            cov[b * p + a] = value;
          }
        }
      }
    }

    // 3. Levels of the residuals.
    if (levelStart < 1) return;
    let largestLevel = 0;
    for (let l = 0; l < levels; l++) {
      const warmFor = Math.min(spec.levelTimeConstants[l]!, spec.warmupSamples);
      for (let m = 0; m < k; m++) {
        const at = l * k + m;
        if (levelStart === 1) {
          levelMean[at] = residual[m]!;
          levelVariance[at] = 0;
          levelZ[at] = 0;
          continue;
        }
        const d = residual[m]! - levelMean[at]!;
        const sd = Math.sqrt(levelVariance[at]!);
        levelZ[at] = sd > 0 ? d / sd : 0;
        const warming = levelStart < warmFor;
        if (!warming && Math.abs(levelZ[at]!) > largestLevel) largestLevel = Math.abs(levelZ[at]!);
        const rate = warming ? 1 / levelStart : Math.max(levelRates[l]!, 1 / levelStart);
        const clipped = warming || sd === 0 ? d : clampAbs(d, spec.clip * sd);
        levelMean[at] = levelMean[at]! + rate * clipped;
        const dv = warming || sd === 0 ? d : clampAbs(d, spec.varianceClip * sd);
        const varianceRate = warming ? rate : Math.max(rate / spec.varianceSlowdown, 1 / levelStart);
        levelVariance[at] = levelVariance[at]! + varianceRate * (dv * dv - levelVariance[at]!);
      }
    }
    anomalous = largestLevel > spec.freezeAbove;
  };

  /** jump and noise of metric m over the last update's window. */
  const windowShape = (m: number): void => {
    if (shapeOf[m] === updates) return;
    shapeOf[m] = updates;
    if (window === undefined || !window.noiseWarm) {
      jump[m] = 0;
      noise[m] = 0;
      return;
    }
    const ring = window.rings[m]!;
    const oldest = (window.newest + 1) % w;
    let largest = 0;
    let diffVariance = 0;
    // diffStd of the window (as features.ts defines it), for `noise`.
    const meanDiff = w > 1 ? (ring[window.newest]! - ring[oldest]!) / (w - 1) : 0;
    let previous = ring[oldest]!;
    for (let j = 1; j < w; j++) {
      const x = ring[(oldest + j) % w]!;
      const d = x - previous;
      if (Math.abs(d) > largest) largest = Math.abs(d);
      diffVariance += (d - meanDiff) * (d - meanDiff);
      previous = x;
    }
    if (w > 1) diffVariance /= w - 1;
    const typicalChange = Math.sqrt(changeSquares[m]!);
    jump[m] = typicalChange > 0 ? largest / typicalChange : 0;
    noise[m] = typicalChange > 0 ? Math.log(Math.sqrt(diffVariance) / typicalChange + 1e-3) : 0;
  };

  const value = (m: number, feature: WindowFeature): number => {
    const levelWarm = meansSeen >= spec.warmupSamples + fitAfter;
    switch (feature) {
      case 'jump':
        windowShape(m);
        return jump[m]!;
      case 'noise':
        windowShape(m);
        return noise[m]!;
      case 'trend':
        return trend[m]!;
      case 'level0':
        return levelWarm ? levelZ[m]! : 0;
      case 'level1':
        return levelWarm && levels > 1 ? levelZ[k + m]! : 0;
      case 'level2':
        return levelWarm && levels > 2 ? levelZ[2 * k + m]! : 0;
      case 'residual':
        return levelWarm ? residualZ[m]! : 0;
      default:
        return Number.NaN;
    }
  };

  return { update, value, reset };
}
