import { describe, expect, it } from 'vitest';
import type { FeatureSpec } from '@outpost/shared';
import type { TelemetryRecord } from '../train/records.js';
import { evaluateRecords, type TruthEpisode } from './evaluate.js';

// One metric, one feature (the window's max), no normalisation: the "model" below scores a
// row by its value, so which windows get flagged is known exactly.
const SPEC: FeatureSpec = { metrics: ['x'], features: ['max'], windowSize: 4, hopSize: 2, normalisation: { center: [0], scale: [1] } };
const identity = (rows: Float32Array): Promise<Float32Array> => Promise.resolve(Float32Array.from(rows));

function series(deviceId: string, values: number[]): TelemetryRecord[] {
  return values.map((x, seq) => ({ deviceId, ts: seq * 1000, seq, metrics: { x } }));
}

function episode(deviceId: string, type: string, startSeq: number, endSeq: number): TruthEpisode {
  return { deviceId, type, metric: 'x', startTs: startSeq * 1000, endTs: endSeq * 1000, startSeq, endSeq };
}

describe('evaluateRecords', () => {
  it('counts an episode detected when a flagged window overlaps it, and false alarms on windows overlapping none', async () => {
    // Windows (hop 2, size 4) end at seq 3, 5, 7, 9, 11: [0-3] [2-5] [4-7] [6-9] [8-11].
    const a = series('a', [0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0]); // spike at 5: windows [2-5] [4-7] flagged
    const b = series('b', [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // a labelled drift nobody sees
    const c = series('c', [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]); // an unlabelled high value: one false alarm
    const truth = [episode('a', 'spike', 5, 5), episode('b', 'drift', 6, 7)];
    const report = await evaluateRecords([...a, ...b, ...c], truth, { featureSpec: SPEC, threshold: 1, score: identity, batchSize: 3 });
    expect(report.windows).toBe(15);
    // a: [2-5] [4-7] overlap the spike; b: [4-7] [6-9] overlap the drift.
    expect(report.anomalousWindows).toBe(4);
    expect(report.flaggedAnomalousWindows).toBe(2);
    expect(report.normalWindows).toBe(11);
    expect(report.falseAlarms).toBe(1);
    expect(report.falseAlarmRate).toBeCloseTo(1 / 11, 12);
    expect(report.perType).toEqual({
      spike: { episodes: 1, detected: 1, detectionRate: 1 },
      drift: { episodes: 1, detected: 0, detectionRate: 0 },
    });
    expect(report.detectionRate).toBe(0.5);
    expect(report.missed).toEqual([{ ...truth[1]!, maxScore: 0 }]);
  });

  it('does not count a window that ends before an episode or starts after it', async () => {
    const a = series('a', [0, 0, 0, 0, 9, 9, 0, 0, 0, 0]);
    // The episode is seq 8-9; the flagged windows [2-5] [4-7] end before it.
    const report = await evaluateRecords(a, [episode('a', 'stuck', 8, 9)], { featureSpec: SPEC, threshold: 1, score: identity });
    expect(report.detected).toBe(0);
    expect(report.falseAlarms).toBe(2);
  });

  it('keeps the seqs of the samples that entered the window when a message lacks the metric', async () => {
    const records: TelemetryRecord[] = [
      ...series('a', [0, 0, 0]),
      { deviceId: 'a', ts: 3000, seq: 3, metrics: { other: 1 } },
      { deviceId: 'a', ts: 4000, seq: 4, metrics: { x: 9 } },
    ];
    // The first window is samples 0, 1, 2, 4 (seq 3 carried no x): it overlaps an episode at seq 4.
    const report = await evaluateRecords(records, [episode('a', 'spike', 4, 4)], { featureSpec: SPEC, threshold: 1, score: identity });
    expect(report.windows).toBe(1);
    expect(report.detected).toBe(1);
  });

  it('refuses a scorer that returns the wrong number of scores', async () => {
    await expect(
      evaluateRecords(series('a', [0, 0, 0, 0]), [], { featureSpec: SPEC, threshold: 1, score: () => Promise.resolve(new Float32Array(0)) }),
    ).rejects.toThrow(/returned 0 scores for 1 rows/);
  });
});
