import { describe, expect, it } from 'vitest';
import { createFeatureWindow, isOutpostError } from '@outpost/shared';
import { scoreMaxReference } from '../onnx/max-score-model.js';
import { ONE_SIDED_FEATURES, trainDetector, type DeviceKind, type DeviceSeries } from './detector.js';
import { createRandom, gaussian } from '@outpost/shared/testing';

const KIND: DeviceKind = { kind: 'pump', model: 'anomaly-pump', metrics: ['current', 'temperature'] };

/**
 * Synthetic pumps: a wandering load sets the current at once and the temperature through a
 * 600-sample thermal lag; each device has its own gains; `offset(t)` is added to the temperature.
 */
function pump(id: string, samples: number, seed: number, offset: (t: number) => number = () => 0): DeviceSeries {
  const random = createRandom(seed);
  const gain = 5 + 10 * random();
  const heat = 10 + 20 * random();
  let load = 0.5;
  let thermal = heat * load;
  const current = new Float64Array(samples);
  const temperature = new Float64Array(samples);
  for (let t = 0; t < samples; t++) {
    load = Math.min(1, Math.max(0, load + 0.01 * gaussian(random) - 0.001 * (load - 0.5)));
    thermal += (heat * load - thermal) / 600;
    current[t] = Math.round((gain * load + 0.05 * gaussian(random)) * 100) / 100;
    temperature[t] = Math.round((20 + thermal + 0.05 * gaussian(random) + offset(t)) * 100) / 100;
  }
  return { deviceId: id, series: [current, temperature], length: samples };
}

describe('trainDetector', () => {
  const devices = Array.from({ length: 10 }, (_, d) => pump(`p${d}`, 8_000, d + 1));
  const detector = trainDetector(KIND, devices, { minTrainingWindows: 5_000 });

  it('predicts a metric with the lag it has, and scales every detector so that its normal tail is 1', () => {
    // The temperature follows the load with a lag (and the current, with the temperature's lag, reads the load's history).
    expect(detector.laggedMetrics).toContain('temperature');
    expect(detector.lagGains['temperature']).toBeLessThan(0.8);
    expect(detector.trainingDevices).toEqual(devices.map((d) => d.deviceId));
    const { features, normalisation } = detector.featureSpec;
    expect(detector.featureSpec.baseline?.regression?.laggedMetrics).toEqual(detector.laggedMetrics);
    detector.tails.forEach((tail, j) => {
      const feature = features[j % features.length]!;
      const evidence = (raw: number): number => {
        const x = (raw - normalisation.center[j]!) / normalisation.scale[j]!;
        return Math.max(x * detector.upper[j]!, -x * detector.lower[j]!);
      };
      expect(normalisation.center[j]).toBe(tail.median);
      expect(evidence(tail.high)).toBeCloseTo(1, 9);
      if (ONE_SIDED_FEATURES.includes(feature)) expect(detector.lower[j]).toBe(0);
      else expect(evidence(tail.low)).toBeCloseTo(1, 9);
    });
  });

  it('writes test vectors with their reference scores, spread over the training scores', () => {
    expect(detector.testVectors).toHaveLength(16);
    for (const v of detector.testVectors) expect(v.expectedScore).toBe(scoreMaxReference(v.input, detector.upper, detector.lower).score);
    const scores = detector.testVectors.map((v) => v.expectedScore);
    expect(scores).toEqual([...scores].sort((a, b) => a - b));
    expect(scores[scores.length - 1]).toBe(detector.scoreQuantiles.max);
  });

  it('scores a device it never saw quietly, and its temperature drifting off its load far above anything seen in training', () => {
    const score = (device: DeviceSeries): number[] => {
      const window = createFeatureWindow(detector.featureSpec);
      const out: number[] = [];
      for (let t = 0; t < device.length; t++) if (window.add({ current: device.series[0]![t]!, temperature: device.series[1]![t]! })) out.push(scoreMaxReference(window.row(), detector.upper, detector.lower).score);
      return out;
    };
    const quiet = score(pump('new', 6_000, 99));
    const drifting = score(pump('new', 6_000, 99, (t) => (t >= 4_000 ? Math.min(3, (t - 4_000) / 30) : 0)));
    const before = quiet.slice(600, 1_000);
    expect(Math.max(...before)).toBeLessThan(3 * detector.scoreQuantiles.p9999);
    // Window i ends at sample 31 + 4i: the drift begins with window 993.
    expect(Math.max(...drifting.slice(993, 1_050))).toBeGreaterThan(3 * detector.scoreQuantiles.max);
  });

  it('refuses too little training traffic', () => {
    try {
      trainDetector(KIND, devices.slice(0, 2));
      expect.unreachable();
    } catch (error) {
      expect(isOutpostError(error, 'MODEL_INVALID')).toBe(true);
      expect((error as Error).message).toMatch(/not enough training windows for anomaly-pump: \d+ from 2 devices after each device's 1952-sample warm-up, need 20000/);
    }
  });
});
