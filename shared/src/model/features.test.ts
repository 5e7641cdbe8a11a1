import { describe, expect, it } from 'vitest';
import { isOutpostError } from '../errors.js';
import { computeFeatures, createFeatureWindow, routeDevice, type MetricValues } from './features.js';
import { FeatureSpecSchema, type FeatureSpec, type WindowFeature } from './manifest.js';
import { createRandom } from '../testing/random.js';

const ALL_FEATURES: WindowFeature[] = ['mean', 'std', 'min', 'max', 'last', 'slope', 'diffStd'];

function makeSpec(overrides: Partial<FeatureSpec> = {}): FeatureSpec {
  const metrics = overrides.metrics ?? ['temperature', 'vibration'];
  const features = overrides.features ?? ALL_FEATURES;
  const length = metrics.length * features.length;
  return FeatureSpecSchema.parse({
    metrics,
    features,
    windowSize: 8,
    hopSize: 3,
    normalisation: { center: Array.from({ length }, (_, i) => i * 0.5), scale: Array.from({ length }, (_, i) => 1 + i * 0.25) },
    ...overrides,
  });
}

/** The textbook definitions, written independently of features.ts. */
function naiveFeature(values: number[], feature: WindowFeature): number {
  const n = values.length;
  const mean = values.reduce((s, v) => s + v, 0) / n;
  switch (feature) {
    case 'mean':
      return mean;
    case 'std':
      return Math.sqrt(values.reduce((s, v) => s + (v - mean) ** 2, 0) / n);
    case 'min':
      return Math.min(...values);
    case 'max':
      return Math.max(...values);
    case 'last':
      return values[n - 1]!;
    case 'slope': {
      if (n === 1) return 0;
      // Ordinary least squares of values against x = 0..n-1, in the n*sum(xy) - sum(x)sum(y) form.
      let sx = 0;
      let sy = 0;
      let sxy = 0;
      let sxx = 0;
      values.forEach((y, x) => {
        sx += x;
        sy += y;
        sxy += x * y;
        sxx += x * x;
      });
      return (n * sxy - sx * sy) / (n * sxx - sx * sx);
    }
    case 'diffStd': {
      if (n === 1) return 0;
      const diffs = values.slice(1).map((v, i) => v - values[i]!);
      const m = diffs.reduce((s, d) => s + d, 0) / diffs.length;
      return Math.sqrt(diffs.reduce((s, d) => s + (d - m) ** 2, 0) / diffs.length);
    }
    default:
      // run and the baseline features have their own tests (baseline.test.ts).
      throw new Error(`no naive definition of ${feature}`);
  }
}

function naiveRow(samples: MetricValues[], spec: FeatureSpec): number[] {
  const window = samples.slice(-spec.windowSize);
  const out: number[] = [];
  for (const metric of spec.metrics) {
    const values = window.map((s) => s[metric]!);
    for (const feature of spec.features) {
      const i = out.length;
      out.push((naiveFeature(values, feature) - spec.normalisation.center[i]!) / spec.normalisation.scale[i]!);
    }
  }
  return out;
}

describe('createFeatureWindow', () => {
  it('emits the first row after windowSize samples, then every hopSize samples', () => {
    const spec = makeSpec({ windowSize: 5, hopSize: 2 });
    const window = createFeatureWindow(spec);
    const due: number[] = [];
    for (let i = 1; i <= 13; i++) if (window.add({ temperature: i, vibration: -i })) due.push(i);
    expect(due).toEqual([5, 7, 9, 11, 13]);
    expect(window.sampleCount).toBe(13);
  });

  it('handles a hop larger than the window', () => {
    const window = createFeatureWindow(makeSpec({ windowSize: 2, hopSize: 5 }));
    const due: number[] = [];
    for (let i = 1; i <= 13; i++) if (window.add({ temperature: i, vibration: i })) due.push(i);
    expect(due).toEqual([2, 7, 12]);
  });

  it('does not advance on a sample missing a metric or carrying a non-finite value, and ignores extra metrics', () => {
    const spec = makeSpec({ windowSize: 3, hopSize: 1 });
    const window = createFeatureWindow(spec);
    const samples: MetricValues[] = [
      { temperature: 1, vibration: 10, pressure: 99 },
      { temperature: 2, vibration: 20 },
    ];
    for (const s of samples) expect(window.add(s)).toBe(false);
    expect(window.add({ temperature: 50 })).toBe(false);
    expect(window.add({ temperature: 50, vibration: Number.NaN })).toBe(false);
    expect(window.sampleCount).toBe(2);
    const row = window.push({ temperature: 3, vibration: 30 });
    expect(row).toBeInstanceOf(Float32Array);
    // The skipped samples left no trace: the row is the one of samples 1, 2, 3.
    expect(Array.from(row!)).toEqual(Array.from(computeFeatures([...samples, { temperature: 3, vibration: 30 }], spec).row));
  });

  it('computes mean, population std, min, max, last, least-squares slope and diffStd on a known window', () => {
    const spec = makeSpec({
      metrics: ['x'],
      windowSize: 4,
      hopSize: 1,
      normalisation: { center: [0, 0, 0, 0, 0, 0, 0], scale: [1, 1, 1, 1, 1, 1, 1] },
    });
    const window = createFeatureWindow(spec);
    // An old sample first, so the ring has wrapped when the row is read.
    for (const x of [100, 2, 4, 4, 10]) window.add({ x });
    const raw = Array.from(window.rawFeatures());
    // x = 2, 4, 4, 10: mean 5; deviations -3 -1 -1 5 -> variance 36/4 = 9 -> std 3;
    // slope: sum (i - 1.5)(x - 5) / sum (i - 1.5)^2 = (4.5 + 0.5 - 0.5 + 7.5) / 5 = 2.4.
    expect(raw[0]).toBeCloseTo(5, 12);
    expect(raw[1]).toBeCloseTo(3, 12);
    expect(raw.slice(2, 5)).toEqual([2, 10, 10]);
    expect(raw[5]).toBeCloseTo(2.4, 12);
    // Differences 2, 0, 6: mean 8/3, deviations -2/3 -8/3 10/3 -> variance (4 + 64 + 100) / 27.
    expect(raw[6]).toBeCloseTo(Math.sqrt(168 / 27), 12);
  });

  it('gives diffStd 0 for a stuck or linearly trending signal, whatever its std', () => {
    const spec = makeSpec({ metrics: ['x'], features: ['std', 'diffStd'], windowSize: 6, hopSize: 1, normalisation: { center: [0, 0], scale: [1, 1] } });
    const stuck = createFeatureWindow(spec);
    const trend = createFeatureWindow(spec);
    for (let i = 0; i < 6; i++) {
      stuck.add({ x: 3.25 });
      trend.add({ x: 10 + 0.5 * i });
    }
    expect(Array.from(stuck.rawFeatures())).toEqual([0, 0]);
    const [std, diffStd] = trend.rawFeatures();
    expect(std).toBeGreaterThan(0.8);
    expect(diffStd).toBeCloseTo(0, 12);
  });

  it('gives std, slope and diffStd 0 for a window of one sample', () => {
    const spec = makeSpec({ metrics: ['x'], windowSize: 1, hopSize: 1, normalisation: { center: [0, 0, 0, 0, 0, 0, 0], scale: [1, 1, 1, 1, 1, 1, 1] } });
    const window = createFeatureWindow(spec);
    window.add({ x: 7 });
    expect(Array.from(window.rawFeatures())).toEqual([7, 0, 7, 7, 7, 0, 0]);
  });

  it('matches a naive implementation on random data for many window and hop sizes', () => {
    const random = createRandom(42);
    for (const [windowSize, hopSize] of [
      [1, 1],
      [2, 1],
      [7, 3],
      [16, 4],
      [32, 4],
      [5, 9],
    ] as const) {
      const length = 3 * ALL_FEATURES.length;
      const withNorm = FeatureSpecSchema.parse({
        metrics: ['a', 'b', 'c'],
        features: ALL_FEATURES,
        windowSize,
        hopSize,
        normalisation: { center: Array.from({ length }, () => random() * 10 - 5), scale: Array.from({ length }, () => 0.1 + random() * 3) },
      });
      const window = createFeatureWindow(withNorm);
      const history: MetricValues[] = [];
      let rows = 0;
      for (let i = 0; i < 400; i++) {
        // Values with a large offset and a trend: where running sums would lose precision.
        const sample = { a: 1000 + random() * 2, b: random() * 1e-3 - i * 0.01, c: Math.round(random() * 4) };
        history.push(sample);
        const row = window.push(sample);
        if (row === undefined) continue;
        rows++;
        const expected = naiveRow(history, withNorm);
        expect(row.length).toBe(expected.length);
        row.forEach((v, j) => expect(Math.abs(v - expected[j]!)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(expected[j]!))));
      }
      expect(rows).toBe(Math.floor((400 - windowSize) / hopSize) + 1);
    }
  });

  it('produces the same rows as computeFeatures on the same samples, bit for bit', () => {
    const random = createRandom(7);
    const spec = makeSpec({ windowSize: 16, hopSize: 4 });
    const window = createFeatureWindow(spec);
    const history: MetricValues[] = [];
    for (let i = 0; i < 200; i++) {
      const sample = { temperature: 60 + random(), vibration: random() * 3 };
      history.push(sample);
      const row = window.push(sample);
      if (row !== undefined) expect(Array.from(row)).toEqual(Array.from(computeFeatures(history, spec).row));
    }
  });

  it('forgets its samples on reset', () => {
    const spec = makeSpec({ windowSize: 3, hopSize: 1 });
    const window = createFeatureWindow(spec);
    for (let i = 0; i < 5; i++) window.add({ temperature: i, vibration: i });
    window.reset();
    expect(window.sampleCount).toBe(0);
    expect(window.add({ temperature: 1, vibration: 1 })).toBe(false);
    expect(() => window.rawFeatures()).toThrow(/1 of 3 samples/);
  });

  it('refuses a hand-built spec whose normalisation does not fit the row', () => {
    const spec = { ...makeSpec(), normalisation: { center: [0], scale: [1] } };
    let caught: unknown;
    try {
      createFeatureWindow(spec);
    } catch (err) {
      caught = err;
    }
    expect(isOutpostError(caught, 'MODEL_INVALID')).toBe(true);
  });
});

describe('computeFeatures', () => {
  it('uses the last windowSize samples and refuses too few or incomplete samples', () => {
    const spec = makeSpec({ windowSize: 2, hopSize: 1 });
    const a = computeFeatures([{ temperature: 100, vibration: 100 }, { temperature: 1, vibration: 2 }, { temperature: 3, vibration: 4 }], spec);
    const b = computeFeatures([{ temperature: 1, vibration: 2 }, { temperature: 3, vibration: 4 }], spec);
    expect(Array.from(a.row)).toEqual(Array.from(b.row));
    expect(a.raw[0]).toBe(2);
    expect(() => computeFeatures([{ temperature: 1, vibration: 2 }], spec)).toThrow(/needs 2 samples/);
    expect(() => computeFeatures([{ temperature: 1, vibration: 2 }, { temperature: 1 }], spec)).toThrow(/sample 1 has no finite value for metric vibration/);
  });
});

describe('routeDevice', () => {
  it('picks, among the models whose metrics a device sends, the one reading the most (the first of equals); none when none fits', () => {
    const model = (name: string, metrics: string[]) => ({ name, featureSpec: { metrics } });
    const [x, xy, z, yx] = [model('x', ['x']), model('xy', ['x', 'y']), model('z', ['z']), model('yx', ['y', 'x'])];
    expect(routeDevice(['x', 'y', 'w'], [x, xy, z])).toBe(xy);
    expect(routeDevice(['x', 'y'], [x, xy, yx])).toBe(xy);
    expect(routeDevice(['x'], [x, xy, z])).toBe(x);
    expect(routeDevice(['y'], [x, xy, z])).toBeUndefined();
  });
});
