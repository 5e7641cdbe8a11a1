import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AccountingValueSchema, type EvictionReport, type UplinkBatch, type UplinkRecord } from '@outpost/shared';
import { applyBatch, applyEviction, createLaneAccounting, MAX_DEVICE_SEQ_RANGES, summarizeLane } from './accounting.js';
import { fromAccountingValue, toAccountingValue } from './accounting-value.js';

const AGENT = 'gw-1';
const EPOCH = 'epoch0001';
const T0 = 1_700_000_000_000;

/** Record `seq` of device `d{seq % devices}`; device seq = agent seq unless given. */
function record(seq: number, devices = 2, overrides: Partial<UplinkRecord> = {}): UplinkRecord {
  return {
    seq,
    deviceId: `d${seq % devices}`,
    ts: T0 + seq,
    receivedAtMs: T0 + seq + 1,
    deviceSeq: seq,
    kind: 'telemetry',
    body: { ts: T0 + seq, seq, metrics: { t: seq / 10 } },
    ...overrides,
  };
}

function batch(first: number, last: number, make: (seq: number) => UplinkRecord = (s) => record(s)): UplinkBatch {
  const records = Array.from({ length: last - first + 1 }, (_, k) => make(first + k));
  return { agentId: AGENT, epoch: EPOCH, lane: 'telemetry', firstSeq: first, lastSeq: last, records };
}

function eviction(id: number, firstSeq: number, lastSeq: number, byDevice: Record<string, number> = {}): EvictionReport {
  return { id, agentId: AGENT, epoch: EPOCH, lane: 'telemetry', firstSeq, lastSeq, records: lastSeq - firstSeq + 1, bytes: 100 * (lastSeq - firstSeq + 1), byDevice, atMs: T0 };
}

const fresh = () => createLaneAccounting(AGENT, EPOCH, 'telemetry');

describe('applyBatch', () => {
  it('counts new records once and re-sent ones as duplicates, whatever the batch boundaries', () => {
    const acc = fresh();
    expect(applyBatch(acc, batch(1, 10), 1, T0)).toEqual({ type: 'batch', records: 10, duplicates: 0, deviceDuplicates: 0 });
    // A re-cut batch: the agent resent 6..10 together with new records 11..15.
    expect(applyBatch(acc, batch(6, 15), 2, T0)).toEqual({ type: 'batch', records: 5, duplicates: 5, deviceDuplicates: 0 });
    expect(summarizeLane(acc)).toMatchObject({ received: 15, duplicates: 5, maxSeq: 15, gaps: 0 });
    expect(acc.devices.get('d0')).toMatchObject({ received: 7, duplicates: 3 });
    expect(acc.devices.get('d1')).toMatchObject({ received: 8, duplicates: 2 });
  });

  it('ignores a redelivery of an already applied message (same stream seq) entirely', () => {
    const acc = fresh();
    applyBatch(acc, batch(1, 10), 7, T0);
    const before = JSON.stringify(toAccountingValue(acc));
    expect(applyBatch(acc, batch(1, 10), 7, T0 + 5)).toBeUndefined();
    expect(JSON.stringify(toAccountingValue(acc))).toBe(before);
  });

  it('counts a seq repeated inside one batch once', () => {
    const acc = fresh();
    const b = batch(1, 3);
    b.records.push(record(2));
    expect(applyBatch(acc, b, 1, T0)).toEqual({ type: 'batch', records: 3, duplicates: 1, deviceDuplicates: 0 });
  });

  it('keeps the newest telemetry per device, even when batches arrive out of order', () => {
    const acc = fresh();
    applyBatch(acc, batch(11, 20), 2, T0);
    applyBatch(acc, batch(1, 10), 1, T0);
    expect(acc.devices.get('d0')?.latest).toEqual({ seq: 20, ts: T0 + 20, receivedAtMs: T0 + 21, metrics: { t: 2 } });
    expect(acc.devices.get('d1')?.latest).toMatchObject({ seq: 19, metrics: { t: 1.9 } });
  });

  it('counts records of other kinds or with a malformed body, without making them the latest value', () => {
    const acc = fresh();
    applyBatch(acc, batch(1, 2, (s) => record(s, 1)), 1, T0);
    applyBatch(acc, batch(3, 3, (s) => record(s, 1, { kind: 'inference', body: { score: 1 } })), 2, T0);
    applyBatch(acc, batch(4, 4, (s) => record(s, 1, { body: { metrics: { t: 'hot' } } })), 3, T0);
    expect(acc.devices.get('d0')).toMatchObject({ received: 4, latest: { seq: 2 } });
  });

  it('reports device-side gaps from the device seq', () => {
    const acc = fresh();
    // Device d0 sent seqs 1, 2, 5, 6 (3 and 4 never reached the agent).
    const deviceSeqs = [1, 2, 5, 6];
    applyBatch(acc, batch(1, 4, (s) => record(s, 1, { deviceSeq: deviceSeqs[s - 1] })), 1, T0);
    expect(acc.devices.get('d0')?.deviceSeqs.countGaps()).toBe(2);
    expect(summarizeLane(acc).gaps).toBe(0); // no agent-side loss
  });

  it('bounds the device-seq ranges kept and still counts the merged holes', () => {
    const acc = fresh();
    const n = MAX_DEVICE_SEQ_RANGES + 10;
    // Every other device seq missing: n holes.
    applyBatch(acc, batch(1, n + 1, (s) => record(s, 1, { deviceSeq: 2 * s })), 1, T0);
    const tally = acc.devices.get('d0')!;
    expect(tally.deviceSeqs.rangeCount()).toBeLessThanOrEqual(MAX_DEVICE_SEQ_RANGES);
    expect(tally.deviceSeqs.countGaps() + tally.deviceSeqGapsForgotten).toBe(n);
  });
});

describe('device resends and refused payloads', () => {
  /** Device `d1`'s message `deviceSeq` sent at `ts`, stored by the agent under agent seq `seq`. */
  const message = (seq: number, deviceSeq: number, ts: number, kind = 'telemetry', body: unknown = { ts, seq: deviceSeq, metrics: { t: 1 } }): UplinkRecord => ({
    seq,
    deviceId: 'd1',
    ts,
    receivedAtMs: ts,
    deviceSeq,
    kind,
    body,
  });
  const lane = (records: UplinkRecord[], laneName: 'telemetry' | 'events' = 'telemetry'): UplinkBatch => ({
    agentId: AGENT,
    epoch: EPOCH,
    lane: laneName,
    firstSeq: records[0]!.seq,
    lastSeq: records.at(-1)!.seq,
    records,
  });

  it('counts a device message stored twice by the agent (same device seq and ts, new agent seq) as a device duplicate, not as received', () => {
    const acc = fresh();
    applyBatch(acc, lane([message(1, 1, T0), message(2, 2, T0 + 1000)]), 1, T0);
    const delta = applyBatch(acc, lane([message(3, 2, T0 + 1000), message(4, 3, T0 + 2000)]), 2, T0);
    expect(delta).toEqual({ type: 'batch', records: 2, duplicates: 0, deviceDuplicates: 1 });
    const d1 = acc.devices.get('d1')!;
    expect({ received: d1.received, telemetry: d1.byKind.get('telemetry'), deviceDuplicates: d1.deviceDuplicates }).toEqual({ received: 3, telemetry: 3, deviceDuplicates: 1 });
    // The agent seq itself was received: no gap in the agent's seqs.
    expect(summarizeLane(acc)).toMatchObject({ received: 4, gaps: 0, duplicates: 0 });
  });

  it('keeps every message of a device that restarts its seqs (same seq, another ts)', () => {
    const acc = fresh();
    applyBatch(acc, lane([message(1, 1, T0), message(2, 2, T0 + 1000)]), 1, T0);
    applyBatch(acc, lane([message(3, 1, T0 + 60_000), message(4, 2, T0 + 61_000)]), 2, T0);
    const d1 = acc.devices.get('d1')!;
    expect({ received: d1.received, deviceDuplicates: d1.deviceDuplicates }).toEqual({ received: 4, deviceDuplicates: 0 });
    expect(d1.latest?.ts).toBe(T0 + 61_000);
  });

  it("counts the agent's device-resend reports as device duplicates, not as the device's data", () => {
    const acc = createLaneAccounting(AGENT, EPOCH, 'events');
    const delta = applyBatch(acc, lane([message(1, 7, T0, 'device-resend', { seq: 7, ts: T0 }), message(2, 8, T0, 'device-resend', { seq: 8, ts: T0 })], 'events'), 1, T0);
    expect(delta).toEqual({ type: 'batch', records: 2, duplicates: 0, deviceDuplicates: 2 });
    const d1 = acc.devices.get('d1')!;
    expect({ received: d1.received, kinds: [...d1.byKind], deviceDuplicates: d1.deviceDuplicates }).toEqual({ received: 0, kinds: [], deviceDuplicates: 2 });
  });

  it('keeps dead-letter reports by reason with their device seqs, and evicted device seqs, to explain gaps', () => {
    const events = createLaneAccounting(AGENT, EPOCH, 'events');
    applyBatch(
      events,
      lane(
        [
          message(1, 3, T0, 'dead-letter', { reason: 'invalid-json', topic: 'devices/d1/telemetry', detail: 'x', seq: 3 }),
          message(2, 0, T0, 'dead-letter', { reason: 'not-utf8', topic: 'devices/d1/telemetry', detail: 'y' }),
        ],
        'events',
      ),
      1,
      T0,
    );
    const d1 = events.devices.get('d1')!;
    expect([...d1.deadLetters]).toEqual([
      ['invalid-json', 1],
      ['not-utf8', 1],
    ]);
    expect(d1.deadLetterSeqs.toJSON()).toEqual([[3, 3]]);
    expect(d1.received).toBe(0);

    const telemetry = fresh();
    applyEviction(telemetry, { ...eviction(1, 5, 6, { d1: 2 }), deviceSeqs: [['d1', [[5, 6]]]] }, T0);
    applyEviction(telemetry, { ...eviction(2, 9, 9, { d1: 1 }), reason: 'corrupt', deviceSeqs: [['d1', [[9, 9]]]] }, T0);
    expect(telemetry.evictions.deviceSeqs.get('d1')!.toJSON()).toEqual([
      [5, 6],
      [9, 9],
    ]);
    expect(telemetry.evictions.corruptRecords).toBe(1);
    // Both survive the stored value.
    const back = fromAccountingValue(AccountingValueSchema.parse(JSON.parse(JSON.stringify(toAccountingValue(events)))));
    expect(back.devices.get('d1')!.deadLetterSeqs.toJSON()).toEqual([[3, 3]]);
    const backT = fromAccountingValue(AccountingValueSchema.parse(JSON.parse(JSON.stringify(toAccountingValue(telemetry)))));
    expect(backT.evictions.deviceSeqs.get('d1')!.count()).toBe(3);
  });

  it('remembers the recent messages across the stored value, so a resend after a restart of the control plane is still recognised', () => {
    const acc = fresh();
    applyBatch(acc, lane([message(1, 1, T0), message(2, 2, T0 + 1000)]), 1, T0);
    const back = fromAccountingValue(AccountingValueSchema.parse(JSON.parse(JSON.stringify(toAccountingValue(acc)))));
    expect(applyBatch(back, lane([message(3, 2, T0 + 1000)]), 2, T0)).toMatchObject({ deviceDuplicates: 1 });
  });

  it('reads values written before resends were counted', () => {
    const old = toAccountingValue(fresh()) as Record<string, unknown>;
    applyBatch(fresh(), batch(1, 1), 1, T0);
    const acc = fresh();
    applyBatch(acc, batch(1, 2), 1, T0);
    const value = toAccountingValue(acc);
    for (const d of value.devices) {
      delete d.deviceDuplicates;
      delete d.recentMessages;
      delete d.deadLetters;
      delete d.deadLetterSeqs;
    }
    delete value.evictions.deviceSeqs;
    delete value.evictions.corruptRecords;
    expect(old.v).toBe(1);
    const back = fromAccountingValue(value);
    expect(back.devices.get('d1')!.deviceDuplicates).toBe(0);
    expect(back.evictions.corruptRecords).toBe(0);
  });
});

describe('gaps and evictions', () => {
  it('reports holes below the highest seq as gaps, and those the agent reported evicted as explained', () => {
    const acc = fresh();
    applyBatch(acc, batch(1, 10), 1, T0);
    applyBatch(acc, batch(21, 30), 2, T0);
    expect(summarizeLane(acc)).toMatchObject({ received: 20, gaps: 10, explainedByEviction: 0, unexplainedGaps: 10 });
    expect(applyEviction(acc, eviction(1, 11, 15, { d0: 3, d1: 2 }), T0)).toEqual({ type: 'eviction', records: 5 });
    expect(summarizeLane(acc)).toMatchObject({ gaps: 10, explainedByEviction: 5, unexplainedGaps: 5, evicted: { records: 5, bytes: 500, reports: 1 } });
    // The rest arrives late: no gap left.
    applyBatch(acc, batch(16, 20), 3, T0);
    expect(summarizeLane(acc)).toMatchObject({ received: 25, gaps: 5, explainedByEviction: 5, unexplainedGaps: 0 });
  });

  it('counts evicted head records (before the first received seq) as explained gaps', () => {
    const acc = fresh();
    applyBatch(acc, batch(6, 10), 1, T0);
    expect(summarizeLane(acc)).toMatchObject({ gaps: 5, explainedByEviction: 0 });
    applyEviction(acc, eviction(1, 1, 5), T0);
    expect(summarizeLane(acc)).toMatchObject({ gaps: 5, explainedByEviction: 5, unexplainedGaps: 0 });
  });

  it('applies an eviction report once, however often it is delivered', () => {
    const acc = fresh();
    applyEviction(acc, eviction(3, 1, 4, { d0: 4 }), T0);
    expect(applyEviction(acc, eviction(3, 1, 4, { d0: 4 }), T0)).toBeUndefined();
    expect(acc.evictions).toMatchObject({ records: 4, bytes: 400 });
    expect(acc.evictions.byDevice.get('d0')).toBe(4);
  });

  it('does not count evictions above the highest received seq as gaps yet', () => {
    const acc = fresh();
    applyBatch(acc, batch(1, 5), 1, T0);
    applyEviction(acc, eviction(1, 6, 9), T0);
    expect(summarizeLane(acc)).toMatchObject({ gaps: 0, explainedByEviction: 0, evicted: { records: 4 } });
  });
});

describe('the stored value', () => {
  it('round-trips through AccountingValueSchema, including a device named __proto__ and metrics named like Object members', () => {
    const acc = fresh();
    applyBatch(acc, batch(1, 3, (s) => record(s, 1, { deviceId: '__proto__', body: JSON.parse(`{"ts": ${T0}, "metrics": {"constructor": 1, "toString": 2}}`) as unknown })), 1, T0);
    applyBatch(acc, batch(4, 6), 2, T0);
    applyEviction(acc, eviction(1, 10, 12, { d0: 3 }), T0);
    const value = JSON.parse(JSON.stringify(toAccountingValue(acc))) as unknown;
    expect(AccountingValueSchema.safeParse(value).success).toBe(true);
    const back = fromAccountingValue(value);
    expect(toAccountingValue(back)).toEqual(toAccountingValue(acc));
    expect(back.devices.get('__proto__')!.latest!.metrics).toEqual({ constructor: 1, toString: 2 });
  });
});

describe('accounting is exact for any resend pattern', () => {
  it('received = distinct seqs, received + duplicates = records delivered, per device too', () => {
    const cut = fc.tuple(fc.integer({ min: 1, max: 200 }), fc.integer({ min: 0, max: 60 }));
    fc.assert(
      fc.property(fc.array(cut, { minLength: 1, maxLength: 30 }), fc.array(fc.tuple(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 260 }), fc.integer({ min: 0, max: 30 }))), (cuts, evictions) => {
        const acc = fresh();
        const seen = new Set<number>();
        let delivered = 0;
        cuts.forEach(([first, width], k) => {
          const b = batch(first, first + width, (s) => record(s, 3));
          delivered += b.records.length;
          for (const r of b.records) seen.add(r.seq);
          applyBatch(acc, b, k + 1, T0);
          // Each message is also redelivered once: never counted again.
          expect(applyBatch(acc, b, k + 1, T0)).toBeUndefined();
        });
        const evicted = new Set<number>();
        const ids = new Set<number>();
        for (const [id, first, width] of evictions) {
          if (ids.has(id)) continue; // one report per id, as the agent makes them
          ids.add(id);
          applyEviction(acc, eviction(id, first, first + width), T0);
          for (let s = first; s <= first + width; s++) evicted.add(s);
        }
        const summary = summarizeLane(acc);
        const max = Math.max(...seen);
        const holes = Array.from({ length: max }, (_, k) => k + 1).filter((s) => !seen.has(s));
        expect(summary.received).toBe(seen.size);
        expect(summary.received + summary.duplicates).toBe(delivered);
        expect(summary.gaps).toBe(holes.length);
        expect(summary.explainedByEviction).toBe(holes.filter((s) => evicted.has(s)).length);
        const devices = [...acc.devices.values()];
        expect(devices.reduce((n, d) => n + d.received, 0)).toBe(seen.size);
        expect(devices.reduce((n, d) => n + d.duplicates, 0)).toBe(summary.duplicates);
      }),
    );
  });
});
