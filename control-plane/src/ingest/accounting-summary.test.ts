// Counting a batch from its summary (what agents since [perf] send beside the records) must
// give exactly what counting its records gives: the same KV value after any sequence of
// batches, resends of batches, device resends, reboots (seqs back to the start), dead letters
// and resend reports, and the same deltas for the metrics.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BatchSummarySchema, type BatchSummary, type UplinkBatch } from '@outpost/shared';
import { applyBatch, applySummary, createLaneAccounting } from './accounting.js';
import { toAccountingValue } from './accounting-value.js';

type UplinkRecord = UplinkBatch['records'][number];

/** The summary of a batch by the rules the agent encodes it with (agent/src/uplink/uplink.ts). */
function summarize(batch: UplinkBatch): BatchSummary {
  const seqs: [number, number][] = [];
  const devices = new Map<string, { kinds: Map<string, number>; runs: [number, number][]; ts: number[]; lastTs: number; newest: UplinkRecord | undefined }>();
  for (const r of batch.records) {
    const range = seqs[seqs.length - 1];
    if (range !== undefined && range[1] + 1 === r.seq) range[1] = r.seq;
    else seqs.push([r.seq, r.seq]);
    let d = devices.get(r.deviceId);
    if (d === undefined) {
      d = { kinds: new Map(), runs: [], ts: [], lastTs: 0, newest: undefined };
      devices.set(r.deviceId, d);
    }
    d.kinds.set(r.kind, (d.kinds.get(r.kind) ?? 0) + 1);
    if (r.kind !== 'telemetry') continue;
    if (d.newest === undefined || r.ts > d.newest.ts || (r.ts === d.newest.ts && r.seq > d.newest.seq)) d.newest = r;
    if (r.deviceSeq === undefined) continue;
    const run = d.runs[d.runs.length - 1];
    if (run !== undefined && run[0] + run[1] === r.deviceSeq) run[1]++;
    else d.runs.push([r.deviceSeq, 1]);
    d.ts.push(d.ts.length === 0 ? r.ts : r.ts - d.lastTs);
    d.lastTs = r.ts;
  }
  const latestOf = (r: UplinkRecord): NonNullable<BatchSummary['devices'][number]['latest']> => {
    const metrics = (r.body as { metrics?: unknown } | null)?.metrics;
    const entries = typeof metrics === 'object' && metrics !== null ? Object.entries(metrics) : [];
    return { seq: r.seq, ts: r.ts, receivedAtMs: r.receivedAtMs, metrics: entries.every(([, v]) => typeof v === 'number') ? (entries as [string, number][]) : [] };
  };
  return BatchSummarySchema.parse({
    agentId: batch.agentId,
    epoch: batch.epoch,
    lane: batch.lane,
    firstSeq: batch.firstSeq,
    lastSeq: batch.lastSeq,
    seqs,
    devices: [...devices].map(([deviceId, d]) => ({
      deviceId,
      kinds: [...d.kinds],
      ...(d.runs.length === 0 ? {} : { telemetry: { runs: d.runs, ts: d.ts } }),
      ...(d.newest === undefined ? {} : { latest: latestOf(d.newest) }),
    })),
  });
}

const MODEL = { name: 'm', version: '1' };

/** One record of a batch, before its agent seq is known. */
const recordArb = fc.oneof(
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('telemetry'), device: fc.integer({ min: 0, max: 2 }), deviceSeq: fc.option(fc.integer({ min: 0, max: 40 }), { freq: 8 }), ts: fc.integer({ min: 0, max: 5 }), value: fc.oneof(fc.integer({ min: -5, max: 5 }), fc.constant(Number.NaN)) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constantFrom('inference', 'inference-summary', 'anomaly'), device: fc.integer({ min: 0, max: 2 }), deviceSeq: fc.option(fc.integer({ min: 0, max: 40 })), ts: fc.integer({ min: 0, max: 5 }), value: fc.constant(0) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constantFrom('device-resend', 'dead-letter'), device: fc.integer({ min: 0, max: 2 }), deviceSeq: fc.option(fc.integer({ min: 0, max: 40 })), ts: fc.integer({ min: 0, max: 5 }), value: fc.constant(0) }) },
);

/** A batch: a start seq (overlapping earlier batches at times), records, and rows left out (corrupt). */
const batchArb = fc.record({ firstSeq: fc.integer({ min: 1, max: 60 }), records: fc.array(recordArb, { minLength: 1, maxLength: 25 }), skip: fc.array(fc.boolean(), { maxLength: 25 }) });

function toBatch(b: { firstSeq: number; records: { kind: string; device: number; deviceSeq: number | null; ts: number; value: number }[]; skip: boolean[] }, lane: 'telemetry' | 'events'): UplinkBatch | undefined {
  const records: UplinkRecord[] = [];
  b.records.forEach((r, i) => {
    if (b.skip[i] === true && i > 0) return;
    const seq = b.firstSeq + i;
    const ts = 1_000 + r.ts;
    const deviceSeq = r.deviceSeq ?? undefined;
    let body: unknown;
    if (r.kind === 'telemetry') body = { ts, ...(deviceSeq === undefined ? {} : { seq: deviceSeq }), metrics: { t: Number.isNaN(r.value) ? 'x' : r.value } };
    else if (r.kind === 'device-resend') body = { seq: deviceSeq ?? 0, ts };
    else if (r.kind === 'dead-letter') body = { reason: 'invalid-json', topic: 't', detail: 'd', ...(deviceSeq === undefined ? {} : { seq: deviceSeq }) };
    else if (r.kind === 'inference-summary') body = { fromTs: ts, toTs: ts, model: MODEL, count: 1, mean: 0.1, max: 0.1, anomalies: 0 };
    else body = { ts, model: MODEL, score: 0.5, anomaly: r.kind === 'anomaly' };
    records.push({ seq, deviceId: `d${r.device}`, ts, receivedAtMs: 2_000 + seq, ...(deviceSeq === undefined ? {} : { deviceSeq }), kind: r.kind, body });
  });
  if (records.length === 0) return undefined;
  return { agentId: 'gw-1', epoch: 'epoch0001', lane, firstSeq: records[0]!.seq, lastSeq: records.at(-1)!.seq, records };
}

describe('applySummary', () => {
  it('counts every batch exactly as applyBatch counts its records, whatever came before', () => {
    fc.assert(
      fc.property(fc.array(batchArb, { minLength: 1, maxLength: 12 }), fc.constantFrom<'telemetry' | 'events'>('telemetry', 'events'), (batches, lane) => {
        const byRecords = createLaneAccounting('gw-1', 'epoch0001', lane);
        const bySummary = createLaneAccounting('gw-1', 'epoch0001', lane);
        let streamSeq = 0;
        for (const b of batches) {
          const batch = toBatch(b, lane);
          if (batch === undefined) continue;
          streamSeq++;
          let read = 0;
          const expected = applyBatch(byRecords, batch, streamSeq, 5_000);
          const actual = applySummary(bySummary, summarize(batch), streamSeq, 5_000, () => {
            read++;
            return batch.records;
          });
          expect(actual).toEqual(expected);
          expect(toAccountingValue(bySummary)).toEqual(toAccountingValue(byRecords));
          // A redelivery changes nothing, and is known without the records.
          expect(applySummary(bySummary, summarize(batch), streamSeq, 6_000, () => batch.records)).toBeUndefined();
          expect(read).toBeLessThanOrEqual(1);
        }
      }),
      { numRuns: 400 },
    );
  });

  it('reads no record of a batch of new telemetry from devices that do not repeat themselves', () => {
    const acc = createLaneAccounting('gw-1', 'epoch0001', 'telemetry');
    const records: UplinkRecord[] = Array.from({ length: 40 }, (_, i) => ({
      seq: i + 1,
      deviceId: `d${i % 2}`,
      ts: 1_000 + i,
      receivedAtMs: 2_000,
      deviceSeq: Math.floor(i / 2),
      kind: i % 5 === 0 ? 'inference-summary' : 'telemetry',
      body: i % 5 === 0 ? { fromTs: 1, toTs: 2, model: MODEL, count: 1, mean: 0, max: 0, anomalies: 0 } : { ts: 1_000 + i, seq: Math.floor(i / 2), metrics: { t: i } },
    }));
    const batch: UplinkBatch = { agentId: 'gw-1', epoch: 'epoch0001', lane: 'telemetry', firstSeq: 1, lastSeq: 40, records };
    const delta = applySummary(acc, summarize(batch), 1, 5_000, () => {
      throw new Error('records read');
    });
    expect(delta).toEqual({ type: 'batch', records: 40, duplicates: 0, deviceDuplicates: 0 });
    expect(acc.devices.get('d1')?.latest).toMatchObject({ seq: 40, ts: 1_039, metrics: { t: 39 } });
    // The same batch again (the agent resending after a lost ack): agent-seq duplicates, from the records.
    let read = false;
    expect(applySummary(acc, summarize(batch), 2, 6_000, () => ((read = true), records))).toEqual({ type: 'batch', records: 0, duplicates: 40, deviceDuplicates: 0 });
    expect(read).toBe(true);
  });
});
