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
    expect(devices[0]).toEqual({
      deviceId: 'd1',
      received: 4,
      kinds: { anomaly: 1, telemetry: 3 },
      duplicates: 1,
      deviceDuplicates: 0,
      deadLetters: {},
      gaps: 2,
      explainedGaps: { deadLetters: 0, evicted: 0, refusedWithoutSeq: 0 },
      unexplainedGaps: 2,
      evicted: 1,
      latest: { ts: T0 + 100, receivedAtMs: T0, metrics: { t: 42 } },
    });
    expect(devices[2]).toMatchObject({ deviceId: 'd3', received: 0, evicted: 1, latest: null });

    const detail = deviceDetail('gw-1', lanes, 'd1')!;
    expect(DeviceDetailResponseSchema.safeParse(detail).success).toBe(true);
    expect(detail.deviceSeq).toEqual({ min: 1, max: 5, gapRanges: [[3, 4]] });
    expect(detail.byEpochLane).toHaveLength(3);
    expect(deviceDetail('gw-1', lanes, 'nope')).toBeUndefined();

    const totals = accountingTotals(lanes.map(summarizeLane));
    expect(totals).toEqual({ received: 5, duplicates: 1, gaps: 0, explainedByEviction: 0, unexplainedGaps: 0, evicted: 2 });
  });

  it('explain device-seq gaps by refused payloads and evicted telemetry, and count device resends apart', () => {
    const telemetry = createLaneAccounting('gw-1', 'epochaaaa', 'telemetry');
    // Device seqs 1, 2, 6 and 8 arrive; 6 arrives twice (the agent stored a resend again).
    applyBatch(telemetry, batch('epochaaaa', 'telemetry', [1, 2, 6, 6, 8].map((deviceSeq) => ({ deviceSeq, ts: T0 + deviceSeq })), 1), 1, T0);
    applyEviction(
      telemetry,
      { id: 1, agentId: 'gw-1', epoch: 'epochaaaa', lane: 'telemetry', firstSeq: 10, lastSeq: 11, records: 2, bytes: 20, byDevice: { d1: 2 }, deviceSeqs: [['d1', [[4, 5]]]], atMs: T0 },
      T0,
    );
    const events = createLaneAccounting('gw-1', 'epochaaaa', 'events');
    applyBatch(
      events,
      batch('epochaaaa', 'events', [
        { kind: 'dead-letter', deviceSeq: 3, body: { reason: 'invalid-payload', topic: 'devices/d1/telemetry', detail: 'metrics: required', seq: 3 } },
        { kind: 'device-resend', deviceSeq: 2, ts: T0 + 2, body: { seq: 2, ts: T0 + 2 } },
      ], 1),
      2,
      T0,
    );
    const [d1] = deviceSummaries([telemetry, events]);
    expect(DeviceSummarySchema.safeParse(d1).success).toBe(true);
    expect(d1).toMatchObject({
      received: 4,
      kinds: { telemetry: 4 },
      deviceDuplicates: 2,
      deadLetters: { 'invalid-payload': 1 },
      gaps: 4,
      explainedGaps: { deadLetters: 1, evicted: 2, refusedWithoutSeq: 0 },
      unexplainedGaps: 1,
    });
  });

  it('let refused payloads without a readable seq explain as many remaining gaps, no more', () => {
    const telemetry = createLaneAccounting('gw-1', 'epochaaaa', 'telemetry');
    applyBatch(telemetry, batch('epochaaaa', 'telemetry', [1, 4, 8].map((deviceSeq) => ({ deviceSeq, ts: T0 + deviceSeq })), 1), 1, T0);
    const events = createLaneAccounting('gw-1', 'epochaaaa', 'events');
    const unreadable = { kind: 'dead-letter', body: { reason: 'not-utf8', topic: 'devices/d1/telemetry', detail: 'payload is not valid UTF-8' } };
    applyBatch(events, batch('epochaaaa', 'events', [unreadable, unreadable], 1), 2, T0);
    const [d1] = deviceSummaries([telemetry, events]);
    expect(d1).toMatchObject({ deadLetters: { 'not-utf8': 2 }, gaps: 5, explainedGaps: { deadLetters: 0, evicted: 0, refusedWithoutSeq: 2 }, unexplainedGaps: 3 });
  });

  it('count inference results per kind, and never let them move the latest reading or the device seqs', () => {
    const lane = createLaneAccounting('gw-1', 'epochaaaa', 'telemetry');
    const result = (ts: number, anomaly: boolean) => ({ ts, model: { name: 'm', version: '1' }, score: 0.5, anomaly });
    applyBatch(
      lane,
      batch(
        'epochaaaa',
        'telemetry',
        [
          { deviceSeq: 1 },
          { deviceSeq: 2 },
          // Newer than the telemetry and carrying a device seq of its own: neither may count as a reading.
          { kind: 'inference', deviceSeq: 9, ts: T0 + 500, body: result(T0 + 500, false) },
          { kind: 'inference', ts: T0 + 501, body: result(T0 + 501, true) },
        ],
        1,
      ),
      1,
      T0,
    );
    const [d1] = deviceSummaries([lane]);
    expect(d1).toMatchObject({ received: 4, kinds: { telemetry: 2, inference: 2 }, gaps: 0, latest: { ts: T0 + 1, metrics: { t: 1 } } });
    expect(deviceDetail('gw-1', [lane], 'd1')!.deviceSeq).toEqual({ min: 1, max: 2, gapRanges: [] });
  });

  it('keep sparse anomaly records (events lane, with the device seq of their telemetry) from adding phantom gaps', () => {
    // As the agent sends them: every 10th reading is anomalous and comes again in the events lane.
    const telemetry = createLaneAccounting('gw-1', 'epochaaaa', 'telemetry');
    const events = createLaneAccounting('gw-1', 'epochaaaa', 'events');
    const READINGS = 3_000;
    applyBatch(telemetry, batch('epochaaaa', 'telemetry', Array.from({ length: READINGS }, (_, k) => ({ deviceSeq: k + 1 })), 1), 1, T0);
    const anomalies = Array.from({ length: READINGS / 10 }, (_, k) => ({ kind: 'anomaly', deviceSeq: 10 * (k + 1), body: { ts: T0, model: { name: 'm', version: '1' }, score: 1, anomaly: true } }));
    applyBatch(events, batch('epochaaaa', 'events', anomalies, 1), 1, T0);
    const [d1] = deviceSummaries([telemetry, events]);
    // 300 sparse seqs in one lane would exceed MAX_DEVICE_SEQ_RANGES and be counted as forgotten gaps.
    expect(d1).toMatchObject({ received: READINGS + READINGS / 10, kinds: { telemetry: READINGS, anomaly: READINGS / 10 }, gaps: 0 });
  });
});
