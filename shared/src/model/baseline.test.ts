import { describe, expect, it } from 'vitest';
import { computeFeatures, createFeatureWindow, type FeatureWindow, type MetricValues } from './features.js';
import { FeatureSpecSchema, type BaselineSpec, type FeatureSpec, type WindowFeature } from './manifest.js';
import { createRandom, gaussian } from '../testing/random.js';

const BASELINE: BaselineSpec = {
  noiseWarmupSamples: 50,
  noiseTimeConstant: 200,
  warmupSamples: 200,
  levelTimeConstants: [20, 200, 800],
  regression: { timeConstant: 2000, lagTimeConstant: 30, laggedMetrics: [], fitAfterSamples: 20 },
  clip: 3,
  varianceClip: 2,
  varianceSlowdown: 4,
  freezeAbove: 3,
  freezeRate: 0.001,
};

const FEATURES: WindowFeature[] = ['jump', 'noise', 'run', 'trend', 'level0', 'level1', 'level2', 'residual'];

function spec(metrics: string[], overrides: Partial<FeatureSpec> = {}): FeatureSpec {
  const n = metrics.length * FEATURES.length;
  return FeatureSpecSchema.parse({
    metrics,
    features: FEATURES,
    windowSize: 8,
    hopSize: 1,
    normalisation: { center: new Array<number>(n).fill(0), scale: new Array<number>(n).fill(1) },
    baseline: BASELINE,
    ...overrides,
  });
}

/** Feeds samples and returns the raw features after each one (undefined before the first row). */
function run(window: FeatureWindow, samples: readonly MetricValues[]): (Record<string, number> | undefined)[] {
  return samples.map((s) => {
    if (!window.add(s)) return undefined;
    const raw = window.rawFeatures();
    return Object.fromEntries(FEATURES.flatMap((f, j) => Object.keys(s).filter((m) => m !== 'other').map((m, i) => [`${m}.${f}`, raw[i * FEATURES.length + j]!])));
  });
}

/** A load wandering slowly; y follows it (y = 2x + 5), z against it (z = -x); sensor noise on each; `fault(t)` is added to y. */
function machine(samples: number, seed: number, fault: (t: number) => number = () => 0): MetricValues[] {
  const random = createRandom(seed);
  let load = 0;
  return Array.from({ length: samples }, (_, t) => {
    load = 0.98 * load + 0.2 * gaussian(random);
    return { x: load + 0.05 * gaussian(random), y: 2 * load + 5 + 0.05 * gaussian(random) + fault(t), z: -load + 0.05 * gaussian(random) };
  });
}

describe('feature specs with a baseline', () => {
  it('require the baseline for its features, enough level time constants, lagged metrics among the metrics, at most 8 metrics', () => {
    const base = spec(['x', 'y']);
    const issues = (value: unknown): string[] => {
      const parsed = FeatureSpecSchema.safeParse(value);
      return parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    };
    const withoutBaseline: Partial<FeatureSpec> = { ...base };
    delete withoutBaseline.baseline;
    expect(issues(withoutBaseline)).toEqual(['baseline: required by the features jump, noise, trend, level0, level1, level2, residual']);
    expect(issues({ ...base, baseline: { ...BASELINE, levelTimeConstants: [20, 200] } })).toEqual(['features.6: level2 needs 3 baseline.levelTimeConstants, there are 2']);
    expect(issues({ ...base, baseline: { ...BASELINE, regression: { ...BASELINE.regression!, laggedMetrics: ['w'] } } })).toEqual(['baseline.regression.laggedMetrics.0: w is not one of metrics']);
    const nine = Array.from({ length: 9 }, (_, i) => `m${i}`);
    expect(issues({ ...base, metrics: nine, normalisation: { center: new Array<number>(72).fill(0), scale: new Array<number>(72).fill(1) } })).toEqual(['metrics: at most 8 metrics with a baseline']);
    // A spec without baseline features needs none (the shipped anomaly-pca model's).
    expect(issues({ ...withoutBaseline, features: ['mean', 'run'], normalisation: { center: [0, 0, 0, 0], scale: [1, 1, 1, 1] } })).toEqual([]);
  });
});

describe('run', () => {
  it('is the longest run of equal neighbours in the window, and needs no baseline', () => {
    const plain = FeatureSpecSchema.parse({ metrics: ['x'], features: ['run'], windowSize: 6, hopSize: 1, normalisation: { center: [0], scale: [1] } });
    const longestRun = (values: number[]): number => {
      const window = createFeatureWindow(plain);
      for (const x of values) window.add({ x });
      return window.rawFeatures()[0]!;
    };
    expect(longestRun([1, 2, 3, 4, 5, 6])).toBe(1);
    expect(longestRun([1, 1, 2, 2, 2, 3])).toBe(3);
    expect(longestRun([7, 7, 7, 7, 7, 7])).toBe(6);
    expect(longestRun([0, 1, 1, 0, 1, 1])).toBe(2);
    // The last 6 of more samples.
    expect(longestRun([5, 5, 5, 5, 1, 2, 3, 4, 4, 6])).toBe(2);
  });
});

describe('per-device baselines', () => {
  it('are 0 until warm: jump, noise, trend after noiseWarmupSamples samples, levels and residual after warmupSamples + fitAfterSamples means', () => {
    const samples = machine(400, 1);
    const rows = run(createFeatureWindow(spec(['x', 'y', 'z'])), samples);
    // The first window mean is at sample index 7 (windowSize 8); levels start with the 220th.
    const levelsFrom = 7 + BASELINE.warmupSamples + BASELINE.regression!.fitAfterSamples - 1;
    rows.forEach((row, t) => {
      if (row === undefined) return expect(t).toBeLessThan(7);
      const noiseWarm = t + 1 > BASELINE.noiseWarmupSamples;
      for (const f of ['jump', 'trend'] as const) expect(row[`y.${f}`] !== 0, `${f} at ${t}`).toBe(noiseWarm);
      for (const f of ['level0', 'level1', 'level2', 'residual'] as const) expect(row[`y.${f}`] !== 0, `${f} at ${t}`).toBe(t >= levelsFrom);
    });
  });

  it('flag a spike (jump), a noise burst (noise) and a stuck sensor (run) against the device own noise, and not its normal windows', () => {
    const faults = (t: number, y: number): number => (t === 1000 ? y + 10 : t >= 1200 && t < 1260 ? y + gaussian(createRandom(t)) * 2 : y);
    const samples = machine(1600, 2).map((s, t) => ({ ...s, y: t >= 1400 && t < 1420 ? 7 : faults(t, s.y!) }));
    const rows = run(createFeatureWindow(spec(['x', 'y', 'z'])), samples);
    const normal = rows.slice(600, 995).map((r) => r!);
    const maxOf = (list: Record<string, number>[], key: string): number => Math.max(...list.map((r) => r[key]!));
    expect(maxOf(normal, 'y.jump')).toBeLessThan(6);
    expect(maxOf(normal, 'y.noise')).toBeLessThan(1);
    expect(maxOf(normal, 'y.run')).toBeLessThanOrEqual(2);
    // y's typical change is about 0.4 (the load moves it); a spike of 10 is some 25 of them.
    expect(rows[1000]!['y.jump']).toBeGreaterThan(15);
    expect(rows[1230]!['y.noise']).toBeGreaterThan(1.5);
    // A run of 20 equal readings: 8 in a window of 8.
    expect(rows[1415]!['y.run']).toBe(8);
  });

  it('see a metric leave the relation its device keeps with the others (residual, levels), and absorb a lasting offset only slowly', () => {
    const offsetFrom = 1500;
    const samples = machine(4000, 3, (t) => (t >= offsetFrom ? 1 : 0));
    const rows = run(createFeatureWindow(spec(['x', 'y', 'z'])), samples).map((r) => r!);
    const before = rows.slice(600, offsetFrom);
    const absMax = (list: Record<string, number>[], key: string): number => Math.max(...list.map((r) => Math.abs(r[key]!)));
    // The load swings y by several units; relative to x and z it is quiet.
    expect(absMax(before, 'y.residual')).toBeLessThan(6);
    expect(absMax(before, 'y.level1')).toBeLessThan(6);
    const after = rows[offsetFrom + 8]!;
    expect(after['y.residual']).toBeGreaterThan(15);
    expect(after['y.level0']).toBeGreaterThan(8);
    expect(after['y.level1']).toBeGreaterThan(8);
    // y is the odd one out: its residual stands out most (x and z, predicted partly from y, move too).
    expect(Math.abs(after['y.residual']!)).toBeGreaterThan(Math.max(Math.abs(after['x.residual']!), Math.abs(after['z.residual']!)));
    // Still visible one slow time constant later (robust updates), gone from the fastest level by then.
    const later = rows[offsetFrom + 8 + BASELINE.levelTimeConstants[1]!]!;
    expect(later['y.level2']).toBeGreaterThan(4);
    expect(Math.abs(later['y.level0']!)).toBeLessThan(3);
  });

  it('stream the same numbers as computeFeatures on the same samples, and start over on reset', () => {
    const s = spec(['x', 'y', 'z']);
    const samples = machine(700, 4);
    const window = createFeatureWindow(s);
    for (const sample of samples) window.add(sample);
    expect(Array.from(window.rawFeatures())).toEqual(Array.from(computeFeatures(samples, s).raw));
    window.reset();
    const fresh = createFeatureWindow(s);
    for (const sample of samples.slice(0, 300)) {
      window.add(sample);
      fresh.add(sample);
    }
    expect(Array.from(window.rawFeatures())).toEqual(Array.from(fresh.rawFeatures()));
  });

  it('ignore a sample missing a metric, as the window does', () => {
    const s = spec(['x', 'y', 'z']);
    const samples = machine(500, 5);
    const gappy = samples.flatMap((sample, t) => (t % 7 === 0 ? [{ x: 1, other: 2 }, sample] : [sample]));
    const a = createFeatureWindow(s);
    const b = createFeatureWindow(s);
    for (const sample of samples) a.add(sample);
    for (const sample of gappy) b.add(sample);
    expect(Array.from(b.rawFeatures())).toEqual(Array.from(a.rawFeatures()));
  });
});
