/**
 * Evictions (DESIGN section 2): the byte bound is kept inside the batch transaction by dropping
 * the oldest records, telemetry first. Each lane cut is one evictions row with its exact range,
 * per-device counts and the device seqs it dropped, so the control plane can explain the gap.
 */
import { Lane, RecordKind } from '@outpost/shared';
import { addToCounter, readOldestReceivedAtMs, type OutboxContext } from './outbox-context.js';
import { COUNTER, EVICTED_COUNTER, LANE_TABLE } from './outbox-schema.js';
import type { Database } from './sqlite.js';
import type { EvictionRow } from './outbox-types.js';

/** An eviction frees down to this fraction of `maxBytes`, so it happens once per ~10% of the bound, not per message. */
export const EVICT_TO_FRACTION = 0.9;
/** Device-seq ranges an eviction reports per device; beyond, the rest stay unexplained gaps (never explained wrongly). */
export const MAX_EVICTED_SEQ_RANGES = 64;
/** Rows fetched per step while finding how far an eviction must go. */
const EVICTION_SCAN_ROWS = 4_096;
/** Oldest telemetry goes first; events only once telemetry is empty (DESIGN section 2). */
const EVICTION_ORDER: readonly Lane[] = [Lane.telemetry, Lane.events];

/** What the evictions of one batch changed, applied to State only after COMMIT returned. */
export interface EvictionOutcome {
  evictions: EvictionRow[];
  /** New head of each lane an eviction cut into. */
  oldestAfterEviction: Partial<Record<Lane, number | undefined>>;
}

/**
 * Device seqs sorted by device, then seq -> per device, the ranges they form (at most
 * MAX_EVICTED_SEQ_RANGES each, lowest first). Pure.
 */
export function deviceSeqRanges(rows: readonly { device_id: string; device_seq: number }[]): EvictionRow['deviceSeqs'] {
  const out: EvictionRow['deviceSeqs'] = [];
  let current: [string, Array<[number, number]>] | undefined;
  for (const { device_id: deviceId, device_seq: seq } of rows) {
    if (current?.[0] !== deviceId) {
      current = [deviceId, []];
      out.push(current);
    }
    const ranges = current[1];
    const last = ranges.at(-1);
    if (last !== undefined && seq <= last[1] + 1) last[1] = Math.max(last[1], seq);
    else if (ranges.length < MAX_EVICTED_SEQ_RANGES) ranges.push([seq, seq]);
  }
  return out;
}

/**
 * Inside the batch transaction: when the batch would push the total past maxBytes, drop the
 * oldest records down to EVICT_TO_FRACTION of it, telemetry first, events only when telemetry
 * is empty. Each lane cut is one evictions row with its exact range and per-device counts.
 */
export async function evictFor(ctx: OutboxContext, incomingBytes: number, atMs: number, outcome: EvictionOutcome): Promise<void> {
  const { db, state } = ctx;
  const maxBytes = ctx.maxBytes;
  const totalBytes = state.bytes.events + state.bytes.telemetry;
  if (totalBytes + incomingBytes <= maxBytes) return;
  let needBytes = totalBytes + incomingBytes - Math.floor(maxBytes * EVICT_TO_FRACTION);
  for (const lane of EVICTION_ORDER) {
    if (needBytes <= 0) break;
    if (state.records[lane] === 0) continue;
    const eviction = await evictOldest(db, lane, needBytes, atMs);
    if (eviction === undefined) continue;
    needBytes -= eviction.bytes;
    outcome.evictions.push(eviction);
    outcome.oldestAfterEviction[lane] = await readOldestReceivedAtMs(db, lane);
  }
}

async function evictOldest(db: Database, lane: Lane, needBytes: number, atMs: number): Promise<EvictionRow | undefined> {
  const table = LANE_TABLE[lane];
  let firstSeq: number | undefined;
  let lastSeq = 0;
  let records = 0;
  let bytes = 0;
  scan: for (;;) {
    const rows = await db.all<{ seq: number; bytes: number }>(`SELECT seq, bytes FROM ${table} WHERE seq > ? ORDER BY seq LIMIT ?`, [
      lastSeq,
      EVICTION_SCAN_ROWS,
    ]);
    if (rows.length === 0) break;
    for (const row of rows) {
      firstSeq ??= row.seq;
      lastSeq = row.seq;
      records += 1;
      bytes += row.bytes;
      if (bytes >= needBytes) break scan;
    }
  }
  if (firstSeq === undefined) return undefined;
  const byDeviceRows = await db.all<{ device_id: string; n: number }>(
    `SELECT device_id, COUNT(*) AS n FROM ${table} WHERE seq <= ? GROUP BY device_id ORDER BY device_id`,
    [lastSeq],
  );
  // Only telemetry carries the device's own seqs; the control plane explains device-seq gaps with them.
  const deviceSeqs =
    lane === Lane.telemetry
      ? deviceSeqRanges(
          await db.all<{ device_id: string; device_seq: number }>(
            `SELECT device_id, device_seq FROM ${table} WHERE seq <= ? AND kind = ? AND device_seq IS NOT NULL ORDER BY device_id, device_seq`,
            [lastSeq, RecordKind.telemetry],
          ),
        )
      : [];
  const deleted = await db.run(`DELETE FROM ${table} WHERE seq <= ?`, [lastSeq]);
  // The counters promise an exact count of what is missing; anything else aborts the batch.
  if (deleted.changes !== records) throw new Error(`eviction of ${table} deleted ${deleted.changes} rows, scanned ${records}`);
  const byDevice = Object.fromEntries(byDeviceRows.map((row) => [row.device_id, row.n]));
  return insertEviction(db, { lane, reason: 'full', firstSeq, lastSeq, records, bytes, byDevice, deviceSeqs, atMs });
}

/** Inside a transaction: the evictions row and the counters it moves. */
export async function insertEviction(db: Database, eviction: Omit<EvictionRow, 'id'>): Promise<EvictionRow> {
  const { lane, reason, firstSeq, lastSeq, records, bytes, byDevice, deviceSeqs, atMs } = eviction;
  const inserted = await db.run(
    'INSERT INTO evictions (lane, reason, first_seq, last_seq, records, bytes, by_device, device_seqs, at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
    [lane, reason, firstSeq, lastSeq, records, bytes, JSON.stringify(byDevice), JSON.stringify(deviceSeqs), atMs],
  );
  await addToCounter(db, EVICTED_COUNTER[lane], records);
  await addToCounter(db, COUNTER.evictedBytes, bytes);
  return { id: inserted.lastID, ...eviction };
}
