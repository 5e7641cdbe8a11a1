import { describe, expect, it } from 'vitest';
import { createFeatureWindow, isOutpostError } from '@outpost/shared';
import { scorePcaReference } from '../onnx/pca-model.js';
import type { TelemetryRecord } from './records.js';
import { quantileOfSorted, trainFromRecords, type FeatureChoice } from './train.js';
import { createRandom, gaussian } from '@outpost/shared/testing';

type Fault = { type: 'stuck' | 'spike' | 'decouple'; fromSeq: number; toSeq: number };

/**
 * Synthetic machines: a slowly wandering load drives current and pressure (correlated), plus
 * sensor noise; a fault makes the data abnormal the way the simulator's anomalies do.
 */
function synthesise(devices: number, samples: number, seed: number, faults: Record<string, Fault> = {}): TelemetryRecord[] {
  const random = createRandom(seed);
  const records: TelemetryRecord[] = [];
  const state = Array.from({ length: devices }, () => ({ load: 0.5, stuck: undefined as number | undefined }));
  for (let seq = 0; seq < samples; seq++) {
    for (let d = 0; d < devices; d++) {
      const s = state[d]!;
      s.load = Math.min(1, Math.max(0, s.load + 0.01 * gaussian(random)));
      let current = 10 * s.load + 0.05 * gaussian(random);
      let pressure = 5 + s.load + 0.01 * gaussian(random);
      const deviceId = `dev-${d}`;
      const fault = faults[deviceId];
      if (fault !== undefined && seq >= fault.fromSeq && seq <= fault.toSeq) {
        if (fault.type === 'stuck') current = s.stuck ??= current;
        if (fault.type === 'spike') current += 5;
        if (fault.type === 'decouple') pressure += 0.5;
      }
      records.push({ deviceId, ts: seq * 1000, seq, metrics: { current, pressure } });
    }
  }
  return records;
}

const CHOICE: FeatureChoice = { metrics: ['current', 'pressure'], features: ['mean', 'diffStd', 'slope'], windowSize: 16, hopSize: 4 };

function scoreRecords(records: TelemetryRecord[], model: Awaited<ReturnType<typeof trainFromRecords>>, deviceId: string): number[] {
  const window = createFeatureWindow(model.featureSpec);
  return records.filter((r) => r.deviceId === deviceId).flatMap((r) => {
    const row = window.push(r.metrics);
    return row === undefined ? [] : [scorePcaReference(row, model.components)];
  });
}

describe('trainFromRecords', () => {
  it('fits the normalisation, k, a threshold above normal scores and test vectors from the reference', async () => {
    const records = synthesise(6, 600, 1);
    const model = await trainFromRecords(records, { featureChoice: CHOICE });
    expect(model.featureSpec).toMatchObject({ metrics: ['current', 'pressure'], features: ['mean', 'diffStd', 'slope'], windowSize: 16, hopSize: 4 });
    // Load ~0.5 drives current ~5: the centre of current's mean feature.
    expect(model.featureSpec.normalisation.center[0]).toBeGreaterThan(2);
    expect(model.featureSpec.normalisation.center[0]).toBeLessThan(8);
    expect(model.trainingRows).toBe(6 * (600 - 16 + 1));
    expect(model.devices).toBe(6);
    expect(model.k).toBeGreaterThanOrEqual(1);
    expect(model.k).toBeLessThanOrEqual(6);
    expect(model.explainedVariance).toBeGreaterThanOrEqual(0.95);
    expect(model.threshold).toBeCloseTo(model.scoreQuantiles.p999 * 1.1, 10);
    expect(model.testVectors).toHaveLength(16);
    for (const v of model.testVectors) expect(v.expectedScore).toBe(scorePcaReference(v.input, model.components));
    // Spread from the lowest to the highest training score.
    expect(model.testVectors[0]!.expectedScore).toBeLessThanOrEqual(model.scoreQuantiles.p50);
    expect(model.testVectors.at(-1)!.expectedScore).toBe(model.scoreQuantiles.max);
  });

  it('scores new normal traffic below the threshold and stuck, spiking or decoupled sensors above it', async () => {
    const model = await trainFromRecords(synthesise(6, 600, 2), { featureChoice: CHOICE });
    const test = synthesise(4, 300, 3, {
      'dev-1': { type: 'stuck', fromSeq: 100, toSeq: 160 },
      'dev-2': { type: 'spike', fromSeq: 150, toSeq: 150 },
      'dev-3': { type: 'decouple', fromSeq: 100, toSeq: 200 },
    });
    const normal = scoreRecords(test, model, 'dev-0').sort((a, b) => a - b);
    expect(quantileOfSorted(normal, 0.95)).toBeLessThan(model.threshold);
    for (const deviceId of ['dev-1', 'dev-2', 'dev-3']) {
      expect(Math.max(...scoreRecords(test, model, deviceId)), deviceId).toBeGreaterThan(model.threshold * 2);
    }
  });

  it('is deterministic', async () => {
    const records = synthesise(3, 200, 4);
    expect(await trainFromRecords(records, { featureChoice: CHOICE })).toEqual(await trainFromRecords(records, { featureChoice: CHOICE }));
  });

  it('refuses too few windows, naming the count and the metrics', async () => {
    const records = synthesise(2, 40, 5);
    let caught: unknown;
    try {
      await trainFromRecords(records, { featureChoice: CHOICE });
    } catch (err) {
      caught = err;
    }
    expect(isOutpostError(caught, 'MODEL_INVALID')).toBe(true);
    expect((caught as Error).message).toMatch(/not enough training windows: 50 from 2 devices, need at least 60 .*current, pressure/);
  });
});
