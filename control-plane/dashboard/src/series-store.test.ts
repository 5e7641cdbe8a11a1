import { describe, expect, it } from 'vitest';
import { SeriesStore } from './series-store.js';

const MODEL = { name: 'm', version: '1' };
const point = (ts: number, t: number, receivedAtMs = ts + 1) => ({ ts, receivedAtMs, metrics: { t } });

describe('SeriesStore', () => {
  it('keeps records in time order, each once, whichever source brought it first', () => {
    const store = new SeriesStore(60_000);
    expect(store.addPoint(point(1_000, 1))).toBe(true);
    expect(store.addPoint(point(3_000, 3))).toBe(true);
    expect(store.addPoint(point(2_000, 2))).toBe(true);
    expect(store.addPoint(point(2_000, 2))).toBe(false); // the live event of a point /series had
    expect(store.addPoint(point(2_000, 9, 5_000))).toBe(true); // same device time, another record
    expect(store.metricData('t')).toEqual([
      [1, 2, 2, 3],
      [1, 2, 9, 3],
    ]);
    expect(store.metricData('absent')[1]).toEqual([null, null, null, null]);
  });

  it('drops what falls out of the window and bounds the count', () => {
    const store = new SeriesStore(10_000, 300);
    for (let s = 0; s < 1_000; s++) store.addPoint(point(s * 100, s));
    expect(store.points.length).toBeLessThanOrEqual(300);
    expect(store.points.at(-1)?.ts).toBe(99_900);
    expect(store.addPoint(point(50_000, 0))).toBe(false); // older than the window
  });

  it('charts the metrics of the points it holds, not every name it ever saw', () => {
    const store = new SeriesStore(10_000, 50);
    store.addPoint({ ts: 0, receivedAtMs: 1, metrics: { old: 1, t: 1 } });
    store.addPoint({ ts: 100, receivedAtMs: 101, metrics: { t: 2 } });
    expect(store.metricNames()).toEqual(['old', 't']);
    // The device stopped sending `old`; once its point left the store, its chart goes.
    for (let s = 2; s < 100; s++) store.addPoint(point(s * 100, s));
    expect(store.points.some((p) => 'old' in p.metrics)).toBe(false);
    expect(store.metricNames()).toEqual(['t']);
    // A device cycling through names keeps at most what its held points carry.
    for (let s = 100; s < 400; s++) store.addPoint({ ts: s * 100, receivedAtMs: s * 100 + 1, metrics: { [`m${s}`]: s } });
    expect(store.metricNames().length).toBeLessThanOrEqual(store.points.length);
  });

  it('merges inference results and anomaly events into the score chart and the markers', () => {
    const store = new SeriesStore(60_000);
    store.addPoint(point(10_000, 1));
    store.addInference({ ts: 10_000, score: 0.1, anomaly: false, threshold: 0.5, model: MODEL });
    store.addInference({ ts: 11_000, score: 0.9, anomaly: true, threshold: 0.5, model: MODEL });
    store.addAnomaly({ ts: 11_000, score: 0.9, anomaly: true, model: MODEL }); // the same, as an `anomaly` event
    store.addAnomaly({ ts: 12_000, score: 0.8, anomaly: true, model: MODEL }); // only as an event
    expect(store.anomaliesInWindow().map((a) => a.ts)).toEqual([11_000, 12_000]);
    expect(store.scoreData()).toEqual([
      [10, 11, 12],
      [0.1, 0.9, null],
      [null, 0.9, 0.8],
      [0.5, 0.5, null],
    ]);
  });
});
