// The accounting's stored form: a lane's in-memory state to and from the JSON value kept in
// KV under accountingKey(agentId, epoch, lane) (AccountingValueSchema).
import { AccountingValueSchema, type AccountingValue } from '@outpost/shared';
import type { LaneAccounting } from './accounting.js';
import { IntervalSet } from './interval-set.js';

/** The JSON layout stored in KV (AccountingValueSchema). */
export function toAccountingValue(acc: LaneAccounting): AccountingValue {
  return {
    v: 1,
    agentId: acc.agentId,
    epoch: acc.epoch,
    lane: acc.lane,
    seqs: acc.seqs.toJSON(),
    duplicates: acc.duplicates,
    devices: [...acc.devices].map(([deviceId, t]) => ({
      deviceId,
      received: t.received,
      duplicates: t.duplicates,
      byKind: [...t.byKind],
      ...(t.latest === undefined ? {} : { latest: { seq: t.latest.seq, ts: t.latest.ts, receivedAtMs: t.latest.receivedAtMs, metrics: Object.entries(t.latest.metrics) } }),
      deviceSeqs: t.deviceSeqs.toJSON(),
      deviceSeqGapsForgotten: t.deviceSeqGapsForgotten,
      deviceDuplicates: t.deviceDuplicates,
      recentMessages: [...t.recentMessages],
      deadLetters: [...t.deadLetters],
      deadLetterSeqs: t.deadLetterSeqs.toJSON(),
      deadLettersWithoutSeq: t.deadLettersWithoutSeq,
    })),
    evictions: {
      ids: acc.evictions.ids.toJSON(),
      seqs: acc.evictions.seqs.toJSON(),
      records: acc.evictions.records,
      bytes: acc.evictions.bytes,
      byDevice: [...acc.evictions.byDevice],
      ...(acc.evictions.lastAtMs === undefined ? {} : { lastAtMs: acc.evictions.lastAtMs }),
      deviceSeqs: [...acc.evictions.deviceSeqs].map(([deviceId, set]) => [deviceId, set.toJSON()]),
      corruptRecords: acc.evictions.corruptRecords,
    },
    recentStreamSeqs: acc.recentStreamSeqs.slice(),
    updatedAtMs: acc.updatedAtMs,
  };
}

/**
 * Reads a stored value (validated: another replica, maybe of another version, wrote it).
 * @throws ZodError when it does not match AccountingValueSchema.
 */
export function fromAccountingValue(value: unknown): LaneAccounting {
  const v = AccountingValueSchema.parse(value);
  return {
    agentId: v.agentId,
    epoch: v.epoch,
    lane: v.lane,
    seqs: IntervalSet.from(v.seqs),
    duplicates: v.duplicates,
    devices: new Map(
      v.devices.map((d) => [
        d.deviceId,
        {
          received: d.received,
          duplicates: d.duplicates,
          byKind: new Map(d.byKind ?? []),
          latest: d.latest === undefined ? undefined : { seq: d.latest.seq, ts: d.latest.ts, receivedAtMs: d.latest.receivedAtMs, metrics: Object.fromEntries(d.latest.metrics) },
          deviceSeqs: IntervalSet.from(d.deviceSeqs),
          deviceSeqGapsForgotten: d.deviceSeqGapsForgotten,
          deviceDuplicates: d.deviceDuplicates ?? 0,
          recentMessages: new Map(d.recentMessages ?? []),
          deadLetters: new Map(d.deadLetters ?? []),
          deadLetterSeqs: IntervalSet.from(d.deadLetterSeqs ?? []),
          deadLettersWithoutSeq: d.deadLettersWithoutSeq ?? 0,
        },
      ]),
    ),
    evictions: {
      ids: IntervalSet.from(v.evictions.ids),
      seqs: IntervalSet.from(v.evictions.seqs),
      records: v.evictions.records,
      bytes: v.evictions.bytes,
      byDevice: new Map(v.evictions.byDevice),
      lastAtMs: v.evictions.lastAtMs,
      deviceSeqs: new Map((v.evictions.deviceSeqs ?? []).map(([deviceId, ranges]) => [deviceId, IntervalSet.from(ranges)])),
      corruptRecords: v.evictions.corruptRecords ?? 0,
    },
    recentStreamSeqs: v.recentStreamSeqs,
    updatedAtMs: v.updatedAtMs,
  };
}
