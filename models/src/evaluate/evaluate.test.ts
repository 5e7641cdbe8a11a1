import { describe, expect, it } from 'vitest';
import { isOutpostError, type FeatureSpec } from '@outpost/shared';
import type { TelemetryRecord } from '../train/records.js';
import { evaluateRecords, type ModelUnderTest, type TruthEpisode } from './evaluate.js';

// Models whose "score" is a window's max, so which windows get flagged is known exactly.
function spec(metrics: string[]): FeatureSpec {
  return { metrics, features: ['max'], windowSize: 4, hopSize: 2, normalisation: { center: metrics.map(() => 0), scale: metrics.map(() => 1) } };
}
const rowMax =
  (n: number) =>
  (rows: Float32Array): Promise<Float32Array> =>
    Promise.resolve(Float32Array.from({ length: rows.length / n }, (_, i) => Math.max(...rows.subarray(i * n, (i + 1) * n))));

function model(name: string, metrics: string[], extra: Partial<ModelUnderTest> = {}): ModelUnderTest {
  return { ref: { name, version: '1' }, featureSpec: spec(metrics), threshold: 1, score: rowMax(metrics.length), ...extra };
}

function series(deviceId: string, values: number[], metrics: (x: number) => Record<string, number> = (x) => ({ x })): TelemetryRecord[] {
  return values.map((x, seq) => ({ deviceId, ts: seq * 1000, seq, metrics: metrics(x) }));
}

function episode(deviceId: string, type: string, startSeq: number, endSeq: number): TruthEpisode {
  return { deviceId, type, metric: 'x', startTs: startSeq * 1000, endTs: endSeq * 1000, startSeq, endSeq };
}

async function refusal(run: Promise<unknown>): Promise<Error> {
  try {
    await run;
  } catch (error) {
    expect(isOutpostError(error, 'MODEL_INVALID')).toBe(true);
    return error as Error;
  }
  throw new Error('expected MODEL_INVALID');
}

describe('evaluateRecords', () => {
  it('routes every device to its model, assesses each model on its own devices, and lists the devices no model fits', async () => {
    // Windows (size 4, stride 2) end at seq 3, 5, 7, 9, 11.
    const records = [
      ...series('m', [0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0], (x) => ({ x, y: 0 })), // a spike at 5, labelled: detected
      ...series('e', [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]), // an unlabelled high value: one false alarm
      ...series('q', [0, 0, 0, 0, 0], () => ({ q: 1 })), // fits no model
    ];
    const truth = [episode('m', 'spike', 5, 5), episode('e', 'drift', 2, 3), episode('q', 'stuck', 1, 2)];
    const report = await evaluateRecords(records, truth, { models: [model('x', ['x']), model('xy', ['x', 'y'])], batchSize: 3 });
    const [x, xy] = report.models;
    expect(report.unroutedDevices).toEqual(['q']);
    expect(report.unroutedEpisodes).toBe(1);
    expect(xy).toMatchObject({ devices: 1, windows: 5, alarmEvents: 1, falseAlarmEvents: 0 });
    expect(xy!.perType).toEqual({ spike: expect.objectContaining({ episodes: 1, detected: 1, delayP50S: 0 }) });
    expect(x).toMatchObject({ devices: 1, windows: 5, alarmEvents: 1, falseAlarmEvents: 1 });
    expect(x!.perType).toEqual({ drift: expect.objectContaining({ episodes: 1, detected: 0 }) });
    expect(x!.missed).toEqual([expect.objectContaining({ deviceId: 'e', type: 'drift', maxScore: 0 })]);
    expect(x!.falseAlarmsPerDeviceDay).toBeCloseTo(1 / (12 / 86_400), 6);
    expect(x!.curve.length).toBeGreaterThan(10);
  });

  it('keeps the seqs of the samples that entered the window when a message lacks the metric', async () => {
    const records: TelemetryRecord[] = [
      ...series('a', [0, 0, 0]),
      { deviceId: 'a', ts: 3000, seq: 3, metrics: { other: 1 } },
      { deviceId: 'a', ts: 4000, seq: 4, metrics: { x: 9 } },
      { deviceId: 'a', ts: 5000, seq: 5, metrics: { x: 0 } },
    ];
    // The first window is samples 0, 1, 2, 4 (seq 3 carried no x): it ends on the spike at seq 4.
    const report = await evaluateRecords(records, [episode('a', 'spike', 4, 4)], { models: [model('x', ['x'])] });
    expect(report.models[0]).toMatchObject({ windows: 1, all: expect.objectContaining({ detected: 1 }) });
  });

  it('refuses devices a model was trained on, naming one, unless told to include them', async () => {
    const records = [...series('seen', [0, 0, 0, 0, 0]), ...series('new', [0, 0, 0, 0, 0])];
    const trained = model('x', ['x'], { trainingDevices: new Set(['seen']) });
    const error = await refusal(evaluateRecords(records, [], { models: [trained] }));
    expect(error.message).toMatch(/device seen of the traffic is one model x@1 was trained on/);
    expect(error.message).toMatch(/--allow-training-devices/);
    const allowed = await evaluateRecords(records, [], { models: [trained], allowTrainingDevices: true });
    expect(allowed.models[0]).toMatchObject({ devices: 2, seenInTraining: 1 });
    expect((await evaluateRecords(series('new', [0, 0, 0, 0]), [], { models: [model('x', ['x'])] })).models[0]!.seenInTraining).toBeUndefined();
  });

  it('refuses a model whose metrics the traffic lacks, naming them, and one whose metrics no device sends together', async () => {
    const env = [...series('e1', [20, 21, 22, 23], (x) => ({ temperature: x, humidity: 40 }))];
    const machine = model('machine', ['temperature', 'vibration', 'pressure']);
    const error = await refusal(evaluateRecords(env, [], { models: [model('env', ['temperature', 'humidity']), machine] }));
    expect(error.message).toBe('model machine@1 reads the metrics temperature, vibration, pressure; the traffic has no vibration, pressure (it has humidity, temperature)');
    const apart = [...series('a', [1, 2, 3, 4], (x) => ({ temperature: x })), ...series('b', [1, 2, 3, 4], (x) => ({ vibration: x, pressure: x }))];
    expect((await refusal(evaluateRecords(apart, [], { models: [machine] }))).message).toBe('model machine@1 reads the metrics temperature, vibration, pressure; no device of the traffic sends all of them');
  });

  it('refuses two models of one kind (the same metrics): the second would get no device', async () => {
    const error = await refusal(evaluateRecords(series('a', [0, 0, 0, 0]), [], { models: [model('one', ['x', 'y']), model('two', ['y', 'x'])] }));
    expect(error.message).toMatch(/models one@1 and two@1 read the same metrics \(y, x\)/);
  });

  it('refuses a scorer that returns the wrong number of scores', async () => {
    const broken = model('x', ['x'], { score: () => Promise.resolve(new Float32Array(0)) });
    expect((await refusal(evaluateRecords(series('a', [0, 0, 0, 0]), [], { models: [broken] }))).message).toMatch(/returned 0 scores for 1 rows/);
  });
});
