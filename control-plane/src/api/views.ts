// What the API shows of an agent's accounting: every (epoch, lane) merged per device. Pure.
import {
  MAX_LISTED_GAP_RANGES,
  type AccountingTotals,
  type DeviceDetailResponse,
  type DeviceSummary,
  type LaneAccountingSummary,
} from '@outpost/shared';
import type { LaneAccounting, LatestReading } from '../ingest/accounting.js';
import { IntervalSet } from '../ingest/interval-set.js';

interface MergedDevice {
  received: number;
  duplicates: number;
  deviceDuplicates: number;
  byKind: Map<string, number>;
  deadLetters: Map<string, number>;
  evicted: number;
  latest: LatestReading | undefined;
  deviceSeqs: IntervalSet;
  deadLetterSeqs: IntervalSet;
  deadLettersWithoutSeq: number;
  evictedSeqs: IntervalSet;
  forgotten: number;
  byEpochLane: DeviceDetailResponse['byEpochLane'];
}

function newer(a: LatestReading | undefined, b: LatestReading | undefined): LatestReading | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return b.ts > a.ts || (b.ts === a.ts && b.receivedAtMs > a.receivedAtMs) ? b : a;
}

function mergeDevices(lanes: readonly LaneAccounting[]): Map<string, MergedDevice> {
  const merged = new Map<string, MergedDevice>();
  const entry = (deviceId: string): MergedDevice => {
    let m = merged.get(deviceId);
    if (m === undefined) {
      m = {
        received: 0,
        duplicates: 0,
        deviceDuplicates: 0,
        byKind: new Map(),
        deadLetters: new Map(),
        evicted: 0,
        latest: undefined,
        deviceSeqs: new IntervalSet(),
        deadLetterSeqs: new IntervalSet(),
        deadLettersWithoutSeq: 0,
        evictedSeqs: new IntervalSet(),
        forgotten: 0,
        byEpochLane: [],
      };
      merged.set(deviceId, m);
    }
    return m;
  };
  for (const lane of lanes) {
    const ids = new Set([...lane.devices.keys(), ...lane.evictions.byDevice.keys()]);
    for (const deviceId of ids) {
      const tally = lane.devices.get(deviceId);
      const evicted = lane.evictions.byDevice.get(deviceId) ?? 0;
      const m = entry(deviceId);
      m.evicted += evicted;
      const evictedSeqs = lane.evictions.deviceSeqs.get(deviceId);
      if (evictedSeqs !== undefined) m.evictedSeqs.addAll(evictedSeqs);
      m.byEpochLane.push({ epoch: lane.epoch, lane: lane.lane, received: tally?.received ?? 0, duplicates: tally?.duplicates ?? 0, evicted });
      if (tally === undefined) continue;
      m.received += tally.received;
      m.duplicates += tally.duplicates;
      m.deviceDuplicates += tally.deviceDuplicates;
      for (const [kind, count] of tally.byKind) m.byKind.set(kind, (m.byKind.get(kind) ?? 0) + count);
      for (const [reason, count] of tally.deadLetters) m.deadLetters.set(reason, (m.deadLetters.get(reason) ?? 0) + count);
      m.deadLetterSeqs.addAll(tally.deadLetterSeqs);
      m.deadLettersWithoutSeq += tally.deadLettersWithoutSeq;
      m.latest = newer(m.latest, tally.latest);
      m.deviceSeqs.addAll(tally.deviceSeqs);
      m.forgotten += tally.deviceSeqGapsForgotten;
    }
  }
  return merged;
}

const byKey = ([a]: [string, number], [b]: [string, number]): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * The device-seq holes and what explains them: a refused payload's seq first, then the seq of
 * evicted (or corrupt) telemetry, then refused payloads whose seq could not be read (one hole
 * each at most). Holes merged away to bound the stored value are explained only by the last.
 */
function explainGaps(m: MergedDevice): Pick<DeviceSummary, 'gaps' | 'explainedGaps' | 'unexplainedGaps'> {
  const holes = IntervalSet.from(m.deviceSeqs.gaps());
  const byDeadLetter = holes.countIntersection(m.deadLetterSeqs);
  const byEviction = holes.countIntersection(m.deadLetterSeqs.union(m.evictedSeqs)) - byDeadLetter;
  const gaps = holes.count() + m.forgotten;
  const refusedWithoutSeq = Math.min(m.deadLettersWithoutSeq, gaps - byDeadLetter - byEviction);
  return {
    gaps,
    explainedGaps: { deadLetters: byDeadLetter, evicted: byEviction, refusedWithoutSeq },
    unexplainedGaps: gaps - byDeadLetter - byEviction - refusedWithoutSeq,
  };
}

function toSummary(deviceId: string, m: MergedDevice): DeviceSummary {
  return {
    deviceId,
    received: m.received,
    // Object.fromEntries defines own properties, so even a kind named `__proto__` stays a plain key.
    kinds: Object.fromEntries([...m.byKind].sort(byKey)),
    duplicates: m.duplicates,
    deviceDuplicates: m.deviceDuplicates,
    deadLetters: Object.fromEntries([...m.deadLetters].sort(byKey)),
    ...explainGaps(m),
    evicted: m.evicted,
    latest: m.latest === undefined ? null : { ts: m.latest.ts, receivedAtMs: m.latest.receivedAtMs, metrics: { ...m.latest.metrics } },
  };
}

/** Every device of an agent (over all its epochs and lanes), by device id. */
export function deviceSummaries(lanes: readonly LaneAccounting[]): DeviceSummary[] {
  return [...mergeDevices(lanes)].map(([deviceId, m]) => toSummary(deviceId, m)).sort((a, b) => (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0));
}

/** One device of an agent, or undefined when the agent never sent anything of it. */
export function deviceDetail(agentId: string, lanes: readonly LaneAccounting[], deviceId: string): DeviceDetailResponse | undefined {
  const m = mergeDevices(lanes).get(deviceId);
  if (m === undefined) return undefined;
  return {
    ...toSummary(deviceId, m),
    agentId,
    deviceSeq: {
      min: m.deviceSeqs.min() ?? null,
      max: m.deviceSeqs.max() ?? null,
      gapRanges: m.deviceSeqs.gaps(undefined, MAX_LISTED_GAP_RANGES).map(([first, last]) => [first, last]),
    },
    byEpochLane: m.byEpochLane,
  };
}

export function accountingTotals(lanes: readonly LaneAccountingSummary[]): AccountingTotals {
  const totals: AccountingTotals = { received: 0, duplicates: 0, gaps: 0, explainedByEviction: 0, unexplainedGaps: 0, evicted: 0 };
  for (const lane of lanes) {
    totals.received += lane.received;
    totals.duplicates += lane.duplicates;
    totals.gaps += lane.gaps;
    totals.explainedByEviction += lane.explainedByEviction;
    totals.unexplainedGaps += lane.unexplainedGaps;
    totals.evicted += lane.evicted.records;
  }
  return totals;
}
