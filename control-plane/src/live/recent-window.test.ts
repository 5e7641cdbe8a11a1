import { describe, expect, it } from 'vitest';
import type { InferencePoint } from '@outpost/shared';
import type { LiveRecord } from './live-record.js';
import { createRecentWindow } from './recent-window.js';

const T0 = 1_800_000_000_000;
const MODEL = { name: 'm', version: '1' };

let seq = 0;
function telemetry(deviceId: string, ts: number, value: number, key = `e:telemetry:${++seq}`): LiveRecord {
  return { type: 'telemetry', agentId: 'gw-1', deviceId, ts, receivedAtMs: ts + 1, key, metrics: { v: value } };
}
function result(deviceId: string, ts: number, anomaly: boolean, type: 'inference' | 'anomaly' = 'inference', key = `e:x:${++seq}`): LiveRecord {
  const r: InferencePoint = { ts, score: anomaly ? 0.9 : 0.1, anomaly, model: MODEL };
  return { type, agentId: 'gw-1', deviceId, ts, receivedAtMs: ts + 1, key, result: r };
}

describe('createRecentWindow', () => {
  it('answers points and results by device time, each record once', () => {
    const w = createRecentWindow({ windowMs: 60_000, maxPointsPerDevice: 100, maxDevices: 10 });
    const late = telemetry('d1', T0 + 2, 2, 'k-late');
    expect(w.add(late, T0)).toBe(true);
    expect(w.add(telemetry('d1', T0, 0), T0)).toBe(true);
    expect(w.add(telemetry('d1', T0 + 1, 1), T0)).toBe(true);
    expect(w.add(late, T0 + 5)).toBe(false); // resent in another batch
    expect(w.add(result('d1', T0 + 1, true, 'inference'), T0)).toBe(true);
    // The same result as an anomaly record of the events lane: stored, listed once.
    expect(w.add(result('d1', T0 + 1, true, 'anomaly'), T0)).toBe(true);
    expect(w.add(result('d1', T0, false), T0)).toBe(true);
    const series = w.series('gw-1', 'd1')!;
    expect(series.points.map((p) => p.metrics['v'])).toEqual([0, 1, 2]);
    expect(series.inference.map((r) => [r.ts, r.anomaly])).toEqual([
      [T0, false],
      [T0 + 1, true],
    ]);
    expect(w.series('gw-1', 'd1', T0 + 1)!.points.map((p) => p.ts)).toEqual([T0 + 1, T0 + 2]);
    // The anomaly record may carry the threshold the inference record lacked: that copy is shown.
    const withThreshold = result('d1', T0 + 1, true, 'anomaly');
    if (withThreshold.type !== 'telemetry') withThreshold.result.threshold = 0.5;
    w.add(withThreshold, T0);
    expect(w.series('gw-1', 'd1')!.inference.map((r) => [r.ts, r.threshold])).toEqual([
      [T0, undefined],
      [T0 + 1, 0.5],
    ]);
    expect(w.series('gw-1', 'd2')).toBeUndefined();
    expect(w.series('gw-2', 'd1')).toBeUndefined();
  });

  it('lists a summary beside a single result of the same time and model: they are different points', () => {
    const w = createRecentWindow({ windowMs: 60_000, maxPointsPerDevice: 100, maxDevices: 10 });
    w.add(result('d1', T0, true, 'anomaly'), T0);
    const summary: InferencePoint = { ts: T0, score: 0.3, anomaly: true, model: MODEL, summary: { fromTs: T0 - 10, count: 5, max: 0.9, anomalies: 1 } };
    w.add({ type: 'inference-summary', agentId: 'gw-1', deviceId: 'd1', ts: T0, receivedAtMs: T0 + 1, key: 'e:telemetry:s1', result: summary }, T0);
    expect(w.series('gw-1', 'd1')!.inference.map((r) => [r.score, r.summary?.count])).toEqual([
      [0.9, undefined],
      [0.3, 5],
    ]);
  });

  it('keeps at most maxPointsPerDevice per device and maxDevices devices, dropping the oldest', () => {
    const w = createRecentWindow({ windowMs: 60_000, maxPointsPerDevice: 3, maxDevices: 2 });
    for (let k = 0; k < 5; k++) w.add(telemetry('d1', T0 + k, k), T0);
    expect(w.series('gw-1', 'd1')!.points.map((p) => p.metrics['v'])).toEqual([2, 3, 4]);
    w.add(telemetry('d2', T0, 0), T0);
    w.add(telemetry('d1', T0 + 9, 9), T0); // d1 updated after d2
    w.add(telemetry('d3', T0, 0), T0);
    expect([w.has('gw-1', 'd1'), w.has('gw-1', 'd2'), w.has('gw-1', 'd3'), w.devices()]).toEqual([true, false, true, 2]);
  });

  it('drops entries that arrived before the window, and devices left empty', () => {
    const w = createRecentWindow({ windowMs: 1_000, maxPointsPerDevice: 10, maxDevices: 10 });
    w.add(telemetry('d1', T0, 0), T0);
    w.add(telemetry('d1', T0 - 50_000, 1), T0 + 500); // an old reading that arrived late: kept by arrival
    w.add(telemetry('d2', T0, 0), T0);
    w.prune(T0 + 1_200);
    expect(w.series('gw-1', 'd1')!.points.map((p) => p.metrics['v'])).toEqual([1]);
    expect(w.has('gw-1', 'd2')).toBe(false);
    w.prune(T0 + 2_000);
    expect(w.devices()).toBe(0);
  });
});
