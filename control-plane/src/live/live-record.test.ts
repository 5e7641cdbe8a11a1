import { describe, expect, it } from 'vitest';
import { toLiveRecord } from './live-record.js';

const batch = { agentId: 'gw-1', epoch: 'epoch0001', lane: 'telemetry' as const };
const record = (kind: string, body: unknown) => ({ seq: 7, deviceId: 'd1', ts: 100, receivedAtMs: 101, kind, body });
const MODEL = { name: 'm', version: '1' };

describe('toLiveRecord', () => {
  it('reads telemetry, inference and anomaly records', () => {
    expect(toLiveRecord(batch, record('telemetry', { ts: 100, metrics: { t: 1 } }))).toEqual({
      type: 'telemetry',
      agentId: 'gw-1',
      deviceId: 'd1',
      ts: 100,
      receivedAtMs: 101,
      key: 'epoch0001:telemetry:7',
      metrics: { t: 1 },
    });
    expect(toLiveRecord(batch, record('inference', { ts: 90, model: MODEL, score: 0.2, anomaly: false, threshold: 0.5 }))).toMatchObject({
      type: 'inference',
      ts: 90,
      result: { ts: 90, score: 0.2, anomaly: false, threshold: 0.5, model: MODEL },
    });
    const anomaly = toLiveRecord({ ...batch, lane: 'events' }, record('anomaly', { ts: 90, model: MODEL, score: 0.9, anomaly: true }));
    expect(anomaly).toMatchObject({ type: 'anomaly', key: 'epoch0001:events:7', result: { score: 0.9, anomaly: true } });
    expect(anomaly?.type === 'anomaly' && 'threshold' in anomaly.result).toBe(false);
  });

  it('reads an inference summary as one point at its last row: the mean as the score, flagged when any row was', () => {
    const summary = { fromTs: 50, toTs: 90, model: MODEL, count: 4, mean: 0.25, max: 0.7, anomalies: 1, threshold: 0.5 };
    expect(toLiveRecord(batch, record('inference-summary', summary))).toMatchObject({
      type: 'inference-summary',
      ts: 90,
      key: 'epoch0001:telemetry:7',
      result: { ts: 90, score: 0.25, anomaly: true, threshold: 0.5, model: MODEL, summary: { fromTs: 50, count: 4, max: 0.7, anomalies: 1 } },
    });
    expect(toLiveRecord(batch, record('inference-summary', { ...summary, anomalies: 0 }))).toMatchObject({ result: { anomaly: false } });
    expect(toLiveRecord(batch, record('inference-summary', { ...summary, count: 0 }))).toBeUndefined();
    expect(toLiveRecord(batch, record('inference-summary', { ts: 90, model: MODEL, score: 0.2, anomaly: false }))).toBeUndefined();
  });

  it('skips other kinds and malformed bodies', () => {
    expect(toLiveRecord(batch, record('rollout-result', {}))).toBeUndefined();
    expect(toLiveRecord(batch, record('telemetry', { ts: 1, metrics: JSON.parse('{"__proto__": 1}') as unknown }))).toBeUndefined();
    expect(toLiveRecord(batch, record('telemetry', { ts: 1, metrics: { t: 'x' } }))).toBeUndefined();
    expect(toLiveRecord(batch, record('inference', { ts: 1, model: MODEL, score: 'high', anomaly: true }))).toBeUndefined();
    expect(toLiveRecord(batch, record('inference', { ts: 1, model: MODEL, score: 0.1, anomaly: false, threshold: 'x' }))).toMatchObject({ result: { score: 0.1 } });
    expect(toLiveRecord(batch, record('anomaly', null))).toBeUndefined();
  });
});
