// The accounting of one (agent, epoch, lane) (DESIGN section 2), as a pure state machine:
// batches and eviction reports go in, counts come out. No I/O here; the KV write around it
// lives in ../nats/kv-cas-writer.ts, so a batch's whole effect is one compare-and-set write.
import {
  EvictionReason,
  MAX_METRICS_PER_MESSAGE,
  METRIC_NAME_PATTERN,
  RecordKind,
  type BatchSummary,
  type EvictionReport,
  type Lane,
  type LaneAccountingSummary,
  type UplinkBatch,
} from '@outpost/shared';
import { IntervalSet } from './interval-set.js';

/** Device-seq holes kept per device per lane; beyond it the lowest holes are merged away (still counted). */
export const MAX_DEVICE_SEQ_RANGES = 256;
/** Stream seqs of applied uplink messages remembered per lane, to recognise a redelivery. */
export const RECENT_STREAM_SEQS = 256;
/**
 * Device messages remembered per device to recognise a resend the agent stored twice (its own
 * window, 256 per device and kept on disk, catches them first; this one is the backstop).
 */
export const RECENT_DEVICE_MESSAGES = 32;
/** Device-seq ranges of dead letters or evictions kept per device; beyond it the highest are dropped (gaps then stay unexplained, never wrongly explained). */
export const MAX_EXPLAINED_SEQ_RANGES = 256;
/** A dead-letter reason as stored: the reasons the agent uses are short; anything longer is cut. */
const MAX_REASON_CHARS = 64;

export interface LatestReading {
  seq: number;
  ts: number;
  receivedAtMs: number;
  metrics: Readonly<Record<string, number>>;
}

export interface DeviceTally {
  /** Records of this device counted once, but reports about its messages (resends, dead letters). */
  received: number;
  /** Records whose agent seq had been counted before. */
  duplicates: number;
  /** `received` by record kind: the agent's inference results carry the device id too. */
  byKind: Map<string, number>;
  latest: LatestReading | undefined;
  deviceSeqs: IntervalSet;
  deviceSeqGapsForgotten: number;
  /** Device messages that arrived again (same seq and ts), reported by the agent or recognised here. */
  deviceDuplicates: number;
  /** seq -> ts of the latest RECENT_DEVICE_MESSAGES telemetry messages, oldest first. */
  recentMessages: Map<number, number>;
  /** Refused payloads by reason. */
  deadLetters: Map<string, number>;
  deadLetterSeqs: IntervalSet;
  /** Refused payloads whose seq could not be read (not JSON, not UTF-8): each may explain one gap. */
  deadLettersWithoutSeq: number;
}

export interface EvictionTally {
  ids: IntervalSet;
  seqs: IntervalSet;
  records: number;
  bytes: number;
  byDevice: Map<string, number>;
  lastAtMs: number | undefined;
  /** Device seqs of evicted telemetry, per device. */
  deviceSeqs: Map<string, IntervalSet>;
  /** Of `records`, rows discarded as corrupt. */
  corruptRecords: number;
}

/** In-memory form of the KV value under `accountingKey(agentId, epoch, lane)`. */
export interface LaneAccounting {
  readonly agentId: string;
  readonly epoch: string;
  readonly lane: Lane;
  seqs: IntervalSet;
  duplicates: number;
  devices: Map<string, DeviceTally>;
  evictions: EvictionTally;
  recentStreamSeqs: number[];
  updatedAtMs: number;
}

/** What one input changed; summed into metrics once the write landed. */
export type AccountingDelta =
  | { type: 'batch'; records: number; duplicates: number; deviceDuplicates: number }
  | { type: 'eviction'; records: number };

export type AccountingInput =
  | { type: 'batch'; batch: UplinkBatch; streamSeq: number }
  /**
   * A batch as its summary tells it. `records` reads the records (and throws when they do not
   * decode): needed only when the summary cannot decide (see applySummary).
   */
  | { type: 'summary'; summary: BatchSummary; streamSeq: number; records: () => UplinkBatch['records'] }
  | { type: 'eviction'; report: EvictionReport };

export function createLaneAccounting(agentId: string, epoch: string, lane: Lane): LaneAccounting {
  return {
    agentId,
    epoch,
    lane,
    seqs: new IntervalSet(),
    duplicates: 0,
    devices: new Map(),
    evictions: { ids: new IntervalSet(), seqs: new IntervalSet(), records: 0, bytes: 0, byDevice: new Map(), lastAtMs: undefined, deviceSeqs: new Map(), corruptRecords: 0 },
    recentStreamSeqs: [],
    updatedAtMs: 0,
  };
}

function deviceTally(acc: LaneAccounting, deviceId: string): DeviceTally {
  let tally = acc.devices.get(deviceId);
  if (tally === undefined) {
    tally = {
      received: 0,
      duplicates: 0,
      byKind: new Map(),
      latest: undefined,
      deviceSeqs: new IntervalSet(),
      deviceSeqGapsForgotten: 0,
      deviceDuplicates: 0,
      recentMessages: new Map(),
      deadLetters: new Map(),
      deadLetterSeqs: new IntervalSet(),
      deadLettersWithoutSeq: 0,
    };
    acc.devices.set(deviceId, tally);
  }
  return tally;
}

/**
 * The metrics of a telemetry body (`{ ts, seq?, metrics }`), or undefined when it does not
 * look like one. The agent validated the body with TelemetrySchema; this only keeps a
 * malformed body out of the stored "latest" values.
 */
export function telemetryMetrics(body: unknown): Record<string, number> | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const metrics = (body as { metrics?: unknown }).metrics;
  if (typeof metrics !== 'object' || metrics === null || Array.isArray(metrics)) return undefined;
  const entries = Object.entries(metrics);
  if (entries.length === 0 || entries.length > MAX_METRICS_PER_MESSAGE) return undefined;
  for (const [name, value] of entries) {
    if (typeof value !== 'number' || !Number.isFinite(value) || !METRIC_NAME_PATTERN.test(name)) return undefined;
  }
  return metrics as Record<string, number>;
}

function isNewer(ts: number, seq: number, than: LatestReading | undefined): boolean {
  return than === undefined || ts > than.ts || (ts === than.ts && seq > than.seq);
}

/** Adds `seqs` to `set`, unless that would hold more than MAX_EXPLAINED_SEQ_RANGES ranges. */
function addExplaining(set: IntervalSet, first: number, last: number): void {
  if (set.rangeCount() < MAX_EXPLAINED_SEQ_RANGES || set.countIn(first - 1, last + 1) > 0) set.add(first, last);
}

/** The `reason` and `seq` of a dead-letter report body, as far as they can be read. */
function deadLetterFacts(body: unknown): { reason: string; seq: number | undefined } {
  const b = typeof body === 'object' && body !== null ? (body as { reason?: unknown; seq?: unknown }) : {};
  const reason = typeof b.reason === 'string' && b.reason.length > 0 ? b.reason.slice(0, MAX_REASON_CHARS) : 'unknown';
  const seq = Number.isSafeInteger(b.seq) && (b.seq as number) >= 0 ? (b.seq as number) : undefined;
  return { reason, seq };
}

/**
 * Counts a batch into `acc` (in place): records whose agent seq is new are received, the
 * others duplicates. Of the received, a device's message seen before (same device seq and ts:
 * a resend the agent stored twice) and the agent's `device-resend` reports count as device
 * duplicates; `dead-letter` reports as refused payloads; the rest as the device's data, with
 * its latest telemetry. Returns undefined, changing nothing, when the uplink message with
 * `streamSeq` was applied before (a redelivery after a lost ack).
 */
export function applyBatch(acc: LaneAccounting, batch: UplinkBatch, streamSeq: number, nowMs: number): AccountingDelta | undefined {
  if (acc.recentStreamSeqs.includes(streamSeq)) return undefined;
  acc.recentStreamSeqs.push(streamSeq);
  if (acc.recentStreamSeqs.length > RECENT_STREAM_SEQS) acc.recentStreamSeqs.splice(0, acc.recentStreamSeqs.length - RECENT_STREAM_SEQS);

  let records = 0;
  let duplicates = 0;
  let deviceDuplicates = 0;
  // Newest new telemetry record per device in this batch; its body is checked once, at the end.
  const newest = new Map<string, UplinkBatch['records'][number]>();
  for (const record of batch.records) {
    const tally = deviceTally(acc, record.deviceId);
    if (acc.seqs.add(record.seq) === 0) {
      duplicates++;
      tally.duplicates++;
      continue;
    }
    records++;
    if (record.kind === RecordKind.deviceResend) {
      deviceDuplicates++;
      tally.deviceDuplicates++;
      continue;
    }
    if (record.kind === RecordKind.deadLetter) {
      const { reason, seq } = deadLetterFacts(record.body);
      tally.deadLetters.set(reason, (tally.deadLetters.get(reason) ?? 0) + 1);
      if (seq !== undefined) addExplaining(tally.deadLetterSeqs, seq, seq);
      else tally.deadLettersWithoutSeq++;
      continue;
    }
    // Only telemetry is the device's own seq. Inference and anomaly records carry the seq of the
    // reading they scored: sparse in the events lane, they would pass MAX_DEVICE_SEQ_RANGES and
    // count their holes as forgotten gaps, and an anomaly whose reading was evicted would fill its hole.
    if (record.kind === RecordKind.telemetry && record.deviceSeq !== undefined) {
      if (tally.recentMessages.get(record.deviceSeq) === record.ts) {
        deviceDuplicates++;
        tally.deviceDuplicates++;
        continue;
      }
      tally.recentMessages.delete(record.deviceSeq);
      tally.recentMessages.set(record.deviceSeq, record.ts);
      if (tally.recentMessages.size > RECENT_DEVICE_MESSAGES) tally.recentMessages.delete(tally.recentMessages.keys().next().value as number);
      if (tally.deviceSeqs.add(record.deviceSeq) > 0 && tally.deviceSeqs.rangeCount() > MAX_DEVICE_SEQ_RANGES) {
        tally.deviceSeqGapsForgotten += tally.deviceSeqs.fillLowestGap();
      }
    }
    tally.received++;
    tally.byKind.set(record.kind, (tally.byKind.get(record.kind) ?? 0) + 1);
    if (record.kind !== RecordKind.telemetry) continue;
    const best = newest.get(record.deviceId);
    if (best === undefined || record.ts > best.ts || (record.ts === best.ts && record.seq > best.seq)) newest.set(record.deviceId, record);
  }
  for (const [deviceId, record] of newest) {
    const tally = deviceTally(acc, deviceId);
    if (!isNewer(record.ts, record.seq, tally.latest)) continue;
    const metrics = telemetryMetrics(record.body);
    if (metrics !== undefined) tally.latest = { seq: record.seq, ts: record.ts, receivedAtMs: record.receivedAtMs, metrics };
  }
  acc.duplicates += duplicates;
  acc.updatedAtMs = nowMs;
  return { type: 'batch', records, duplicates, deviceDuplicates };
}

/**
 * Folds an eviction report into `acc`; idempotent by report id (a redelivered or resent
 * report changes nothing and returns undefined).
 */
export function applyEviction(acc: LaneAccounting, report: EvictionReport, nowMs: number): AccountingDelta | undefined {
  const ev = acc.evictions;
  if (ev.ids.contains(report.id)) return undefined;
  ev.ids.add(report.id);
  ev.seqs.add(report.firstSeq, report.lastSeq);
  ev.records += report.records;
  ev.bytes += report.bytes;
  for (const [deviceId, count] of Object.entries(report.byDevice)) ev.byDevice.set(deviceId, (ev.byDevice.get(deviceId) ?? 0) + count);
  ev.lastAtMs = Math.max(ev.lastAtMs ?? report.atMs, report.atMs);
  if (report.reason === EvictionReason.corrupt) ev.corruptRecords += report.records;
  for (const [deviceId, ranges] of report.deviceSeqs ?? []) {
    let set = ev.deviceSeqs.get(deviceId);
    if (set === undefined) {
      set = new IntervalSet();
      ev.deviceSeqs.set(deviceId, set);
    }
    for (const [first, last] of ranges) if (first <= last) addExplaining(set, first, last);
  }
  acc.updatedAtMs = nowMs;
  return { type: 'eviction', records: report.records };
}

/** Kinds whose records the summary does not describe well enough: their bodies are read. */
const KINDS_NEEDING_BODIES: ReadonlySet<string> = new Set([RecordKind.deviceResend, RecordKind.deadLetter]);

/**
 * Counts a batch from its summary, exactly as applyBatch counts its records, without reading
 * one record: agent seqs by range, and per device its records by kind, its device seqs and ts
 * in order (device resends and device-seq gaps) and its latest reading. Falls back to the
 * records and applyBatch when the summary cannot decide: the batch overlaps agent seqs already
 * counted (a resend of a batch: which device's records are the duplicates?), holds dead
 * letters or resend reports (their bodies carry what is counted), or a device message in it
 * repeats one of the device's recent messages or another of the batch (a device resend the
 * agent stored twice: counted record by record). Redeliveries are recognised as in applyBatch.
 */
export function applySummary(acc: LaneAccounting, summary: BatchSummary, streamSeq: number, nowMs: number, records: () => UplinkBatch['records']): AccountingDelta | undefined {
  if (acc.recentStreamSeqs.includes(streamSeq)) return undefined;
  const { seqs, devices } = summary;
  let overlap = 0;
  for (const [first, last] of seqs) overlap += acc.seqs.countIn(first, last);
  const needsRecords =
    overlap > 0 ||
    devices.some((d) => d.kinds.some(([kind]) => KINDS_NEEDING_BODIES.has(kind)) || (d.telemetry !== undefined && mayRepeat(acc.devices.get(d.deviceId), d.telemetry)));
  if (needsRecords) {
    const { agentId, epoch, lane, firstSeq, lastSeq } = summary;
    return applyBatch(acc, { agentId, epoch, lane, firstSeq, lastSeq, records: records() }, streamSeq, nowMs);
  }
  acc.recentStreamSeqs.push(streamSeq);
  if (acc.recentStreamSeqs.length > RECENT_STREAM_SEQS) acc.recentStreamSeqs.splice(0, acc.recentStreamSeqs.length - RECENT_STREAM_SEQS);
  let received = 0;
  for (const [first, last] of seqs) received += acc.seqs.add(first, last);
  for (const d of devices) {
    const tally = deviceTally(acc, d.deviceId);
    for (const [kind, n] of d.kinds) {
      tally.received += n;
      tally.byKind.set(kind, (tally.byKind.get(kind) ?? 0) + n);
    }
    if (d.telemetry !== undefined) {
      // No message repeats (mayRepeat): each one enters the recent messages and the seq set, in order.
      const { runs, ts } = d.telemetry;
      let at = 0;
      let t = 0;
      for (const [first, length] of runs) {
        for (let seq = first; seq < first + length; seq++) {
          t = at === 0 ? ts[0]! : t + ts[at]!;
          at++;
          tally.recentMessages.set(seq, t);
          if (tally.recentMessages.size > RECENT_DEVICE_MESSAGES) tally.recentMessages.delete(tally.recentMessages.keys().next().value as number);
          if (tally.deviceSeqs.add(seq) > 0 && tally.deviceSeqs.rangeCount() > MAX_DEVICE_SEQ_RANGES) {
            tally.deviceSeqGapsForgotten += tally.deviceSeqs.fillLowestGap();
          }
        }
      }
    }
    if (d.latest !== undefined && isNewer(d.latest.ts, d.latest.seq, tally.latest)) {
      const metrics = telemetryMetrics({ metrics: Object.fromEntries(d.latest.metrics) });
      if (metrics !== undefined) tally.latest = { seq: d.latest.seq, ts: d.latest.ts, receivedAtMs: d.latest.receivedAtMs, metrics };
    }
  }
  acc.updatedAtMs = nowMs;
  return { type: 'batch', records: received, duplicates: 0, deviceDuplicates: 0 };
}

/**
 * Whether a device message of the batch may repeat one of the device's recent messages or
 * another of the batch (same seq; the ts then decides, record by record): its seqs go back on
 * themselves, or one of them is among the recent messages.
 */
function mayRepeat(tally: DeviceTally | undefined, telemetry: NonNullable<BatchSummary['devices'][number]['telemetry']>): boolean {
  let previousLast = -1;
  for (const [first, length] of telemetry.runs) {
    if (first <= previousLast) return true;
    previousLast = first + length - 1;
    if (tally !== undefined && tally.recentMessages.size > 0) {
      for (const seq of tally.recentMessages.keys()) if (seq >= first && seq <= previousLast) return true;
    }
  }
  return false;
}

/** Applies any input. */
export function applyAccountingInput(acc: LaneAccounting, input: AccountingInput, nowMs: number): AccountingDelta | undefined {
  switch (input.type) {
    case 'batch':
      return applyBatch(acc, input.batch, input.streamSeq, nowMs);
    case 'summary':
      return applySummary(acc, input.summary, input.streamSeq, nowMs, input.records);
    case 'eviction':
      return applyEviction(acc, input.report, nowMs);
  }
}

/** Agent seqs start at 1 (SQLite AUTOINCREMENT), so every hole from 1 up to the highest is a gap. */
const FIRST_AGENT_SEQ = 1;

/** Received, duplicates, gaps and how many gaps evictions explain, for one (epoch, lane). */
export function summarizeLane(acc: LaneAccounting): LaneAccountingSummary {
  const holes = IntervalSet.from(acc.seqs.gaps(FIRST_AGENT_SEQ));
  const gaps = holes.count();
  const explainedByEviction = holes.countIntersection(acc.evictions.seqs);
  return {
    epoch: acc.epoch,
    lane: acc.lane,
    received: acc.seqs.count(),
    duplicates: acc.duplicates,
    maxSeq: acc.seqs.max() ?? 0,
    gaps,
    explainedByEviction,
    unexplainedGaps: gaps - explainedByEviction,
    evicted: { records: acc.evictions.records, bytes: acc.evictions.bytes, reports: acc.evictions.ids.count() },
    devices: acc.devices.size,
    updatedAtMs: acc.updatedAtMs,
  };
}
