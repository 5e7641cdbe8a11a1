import { describe, expect, it } from 'vitest';
import { DeviceDetailResponseSchema, DeviceSummarySchema, type UplinkBatch, type UplinkRecord } from '@outpost/shared';
import { applyBatch, applyEviction, createLaneAccounting, summarizeLane } from '../ingest/accounting.js';
import { accountingTotals, deviceDetail, deviceSummaries } from './views.js';

const T0 = 1_700_000_000_000;

function batch(epoch: string, lane: 'events' | 'telemetry', records: Partial<UplinkRecord>[], firstSeq: number): UplinkBatch {
  const full = records.map((r, k) => ({ seq: firstSeq + k, deviceId: 'd1', ts: T0 + k, receivedAtMs: T0 + k, kind: 'telemetry', body: { ts: T0, metrics: { t: k } }, ...r }));
  return { agentId: 'gw-1', epoch, lane, firstSeq, lastSeq: firstSeq + records.length - 1, records: full };
}

describe('device views', () => {
  it('merge every epoch and lane of an agent per device', () => {
    const old = createLaneAccounting('gw-1', 'epochaaaa', 'telemetry');
    applyBatch(old, batch('epochaaaa', 'telemetry', [{ deviceSeq: 1 }, { deviceSeq: 2 }, { deviceId: 'd2' }], 1), 1, T0);
    applyBatch(old, batch('epochaaaa', 'telemetry', [{ deviceSeq: 2 }], 2), 2, T0); // a duplicate
    applyEviction(old, { id: 1, agentId: 'gw-1', epoch: 'epochaaaa', lane: 'telemetry', firstSeq: 4, lastSeq: 5, records: 2, bytes: 20, byDevice: { d1: 1, d3: 1 }, atMs: T0 }, T0);
    // A re-provisioned gateway: a new epoch; the device keeps its own seq (3 and 4 lost on the way).
    const fresh = createLaneAccounting('gw-1', 'epochbbbb', 'telemetry');
    applyBatch(fresh, batch('epochbbbb', 'telemetry', [{ deviceSeq: 5, ts: T0 + 100, body: { ts: T0 + 100, metrics: { t: 42 } } }], 1), 3, T0);
    const events = createLaneAccounting('gw-1', 'epochbbbb', 'events');
    applyBatch(events, batch('epochbbbb', 'events', [{ kind: 'anomaly', body: {} }], 1), 4, T0);

    const lanes = [old, fresh, events];
    const devices = deviceSummaries(lanes);
    for (const d of devices) expect(DeviceSummarySchema.safeParse(d).success).toBe(true);
    expect(devices.map((d) => d.deviceId)).toEqual(['d1', 'd2', 'd3']);
    expect(devices[0]).toEqual({ deviceId: 'd1', received: 4, duplicates: 1, gaps: 2, evicted: 1, latest: { ts: T0 + 100, receivedAtMs: T0, metrics: { t: 42 } } });
    expect(devices[2]).toMatchObject({ deviceId: 'd3', received: 0, evicted: 1, latest: null });

    const detail = deviceDetail('gw-1', lanes, 'd1')!;
    expect(DeviceDetailResponseSchema.safeParse(detail).success).toBe(true);
    expect(detail.deviceSeq).toEqual({ min: 1, max: 5, gapRanges: [[3, 4]] });
    expect(detail.byEpochLane).toHaveLength(3);
    expect(deviceDetail('gw-1', lanes, 'nope')).toBeUndefined();

    const totals = accountingTotals(lanes.map(summarizeLane));
    expect(totals).toEqual({ received: 5, duplicates: 1, gaps: 0, explainedByEviction: 0, unexplainedGaps: 0, evicted: 2 });
  });
});
