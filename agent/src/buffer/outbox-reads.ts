/**
 * What the uplink and diagnostics do with committed rows: read a lane (each row checked),
 * delete what upstream acknowledged, discard corrupt rows as a `corrupt` eviction, list
 * evictions and dead letters, the resend window, pragmas and integrity. Every call takes the
 * connection's lock (useDb), so it only ever sees committed rows.
 */
import { DEVICE_ID_PATTERN, Lane, RecordKind } from '@outpost/shared';
import { laneTable, notifyEviction, readOldestReceivedAtMs, useDb, useReader, type OutboxContext } from './outbox-context.js';
import { reclaimFreePages } from './outbox-commit.js';
import { deviceSeqRanges, insertEviction } from './outbox-eviction.js';
import { rollbackQuietly } from './outbox-schema.js';
import type { DeviceWindowRow, EvictionRow, Outbox, StoredDeadLetter, StoredRecord } from './outbox-types.js';

/** How a corrupt row whose device id cannot be read is counted in an eviction's byDevice. */
export const UNREADABLE_DEVICE_ID = '(unreadable)';
/** Kinds are TEXT up to this long (UplinkRecordSchema). */
const MAX_KIND_CHARS = 64;

/** Settings read back from the outbox's own connection (synchronous is per connection). */
export interface OutboxPragmas {
  journalMode: string;
  /** 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA. */
  synchronous: number;
  /** 0 NONE, 1 FULL, 2 INCREMENTAL. */
  autoVacuum: number;
  pageSizeBytes: number;
  pageCount: number;
  maxPageCount: number;
  freelistCount: number;
}

/** The reads and deletes of the Outbox contract, plus the introspection of SqliteOutbox. */
export interface OutboxReads extends Pick<Outbox, 'read' | 'deleteThrough' | 'evictions' | 'deadLetters' | 'discardCorrupt' | 'deviceWindow' | 'pruneDeviceWindow'> {
  pragmas(): Promise<OutboxPragmas>;
  integrityCheck(): Promise<string>;
}

interface LaneRow {
  seq: number;
  device_id: string;
  ts: number;
  device_seq: number | null;
  kind: string;
  body: string;
  received_at_ms: number;
  bytes: number;
}

interface EvictionDbRow {
  id: number;
  lane: Lane;
  reason: EvictionRow['reason'];
  device_seqs: string;
  first_seq: number;
  last_seq: number;
  records: number;
  bytes: number;
  by_device: string;
  at_ms: number;
}

interface DeadLetterDbRow {
  id: number;
  device_id: string | null;
  topic: string;
  reason: string;
  detail: string;
  payload: Buffer;
  at_ms: number;
}

/** Why a stored row cannot be sent as it is, or undefined when it can. `bodyValid` is SQLite's json_valid(body). */
function checkStoredRow(row: { device_id: unknown; ts: unknown; device_seq: unknown; kind: unknown; received_at_ms: unknown; bytes: unknown }, bodyValid: unknown): string | undefined {
  if (bodyValid !== 1) return 'body is not valid JSON';
  if (typeof row.device_id !== 'string' || !DEVICE_ID_PATTERN.test(row.device_id)) return 'device_id is not a device id';
  if (!Number.isSafeInteger(row.ts)) return 'ts is not an integer';
  if (row.device_seq !== null && !(Number.isSafeInteger(row.device_seq) && (row.device_seq as number) >= 0)) return 'device_seq is not a non-negative integer';
  if (typeof row.kind !== 'string' || row.kind.length === 0 || row.kind.length > MAX_KIND_CHARS) return 'kind is not a kind';
  if (!Number.isSafeInteger(row.received_at_ms) || !Number.isSafeInteger(row.bytes)) return 'received_at_ms or bytes is not an integer';
  return undefined;
}

export function createOutboxReads(ctx: OutboxContext): OutboxReads {
  const { db } = ctx;
  return {
    read(lane, afterSeq, limit) {
      return useReader(ctx, 'read', async () => {
        if (limit <= 0) return [];
        // json_valid runs in SQLite's thread, not ours: a corrupt body is found without parsing every body here.
        const rows = await ctx.readDb.all<LaneRow & { body_valid: number }>(
          `SELECT seq, device_id, ts, device_seq, kind, body, received_at_ms, bytes, json_valid(body) AS body_valid FROM ${laneTable(lane)} WHERE seq > ? ORDER BY seq LIMIT ?`,
          [afterSeq, limit],
        );
        return rows.map((row): StoredRecord => {
          const corrupt = checkStoredRow(row, row.body_valid);
          return {
            lane,
            seq: row.seq,
            deviceId: row.device_id,
            ts: row.ts,
            deviceSeq: row.device_seq ?? undefined,
            kind: row.kind,
            body: row.body,
            receivedAtMs: row.received_at_ms,
            bytes: row.bytes,
            ...(corrupt === undefined ? {} : { corrupt }),
          };
        });
      });
    },

    deleteThrough(lane, seq) {
      return useDb(ctx, 'deleteThrough', () => deleteThrough(ctx, lane, seq));
    },

    discardCorrupt(lane, records) {
      return useDb(ctx, 'discardCorrupt', () => discardCorrupt(ctx, lane, records));
    },

    evictions(afterId = 0) {
      return useDb(ctx, 'evictions', async () => {
        const rows = await db.all<EvictionDbRow>(
          'SELECT id, lane, reason, first_seq, last_seq, records, bytes, by_device, device_seqs, at_ms FROM evictions WHERE id > ? ORDER BY id',
          [afterId],
        );
        return rows.map((row): EvictionRow => ({
          id: row.id,
          lane: row.lane,
          reason: row.reason,
          deviceSeqs: JSON.parse(row.device_seqs) as EvictionRow['deviceSeqs'],
          firstSeq: row.first_seq,
          lastSeq: row.last_seq,
          records: row.records,
          bytes: row.bytes,
          byDevice: JSON.parse(row.by_device) as Record<string, number>,
          atMs: row.at_ms,
        }));
      });
    },

    deadLetters(limit) {
      return useDb(ctx, 'deadLetters', async () => {
        if (limit <= 0) return [];
        const rows = await db.all<DeadLetterDbRow>(
          'SELECT id, device_id, topic, reason, detail, payload, at_ms FROM dead_letters ORDER BY id DESC LIMIT ?',
          [limit],
        );
        return rows.map((row): StoredDeadLetter => ({
          id: row.id,
          deviceId: row.device_id,
          topic: row.topic,
          reason: row.reason,
          detail: row.detail,
          payload: row.payload,
          atMs: row.at_ms,
        }));
      });
    },

    deviceWindow() {
      return useDb(ctx, 'deviceWindow', async () => {
        const rows = await db.all<{ device_id: string; device_seq: number; ts: number; at_ms: number }>('SELECT device_id, device_seq, ts, at_ms FROM device_window ORDER BY at_ms');
        return rows.map((row): DeviceWindowRow => ({ deviceId: row.device_id, deviceSeq: row.device_seq, ts: row.ts, atMs: row.at_ms }));
      });
    },

    pruneDeviceWindow(keepDevices) {
      return useDb(ctx, 'pruneDeviceWindow', async () => {
        const result = await db.run(
          `DELETE FROM device_window WHERE device_id NOT IN
             (SELECT device_id FROM device_window GROUP BY device_id ORDER BY MAX(at_ms) DESC LIMIT ?)`,
          [Math.max(0, Math.floor(keepDevices))],
        );
        return result.changes;
      });
    },

    pragmas() {
      return useDb(ctx, 'pragmas', async () => {
        const read = async <K extends string>(name: K): Promise<unknown> => (await db.get<Record<K, unknown>>(`PRAGMA ${name}`))?.[name];
        return {
          journalMode: String(await read('journal_mode')),
          synchronous: Number(await read('synchronous')),
          autoVacuum: Number(await read('auto_vacuum')),
          pageSizeBytes: Number(await read('page_size')),
          pageCount: Number(await read('page_count')),
          maxPageCount: Number(await read('max_page_count')),
          freelistCount: Number(await read('freelist_count')),
        };
      });
    },

    integrityCheck() {
      return useDb(ctx, 'integrity check', async () => {
        const rows = await db.all<{ integrity_check: string }>('PRAGMA integrity_check');
        return rows.map((r) => r.integrity_check).join('\n');
      });
    },
  };
}

async function deleteThrough(ctx: OutboxContext, lane: Lane, seq: number): Promise<number> {
  const { db, state } = ctx;
  const table = laneTable(lane);
  await db.run('BEGIN IMMEDIATE');
  let deleted: { n: number; b: number };
  try {
    deleted = (await db.get<{ n: number; b: number }>(`SELECT COUNT(*) AS n, COALESCE(SUM(bytes), 0) AS b FROM ${table} WHERE seq <= ?`, [seq])) ?? { n: 0, b: 0 };
    if (deleted.n > 0) await db.run(`DELETE FROM ${table} WHERE seq <= ?`, [seq]);
    await db.run('COMMIT');
  } catch (err) {
    await rollbackQuietly(db);
    throw err;
  }
  if (deleted.n === 0) return 0;
  state.records[lane] -= deleted.n;
  state.bytes[lane] -= deleted.b;
  state.oldestReceivedAtMs[lane] = await readOldestReceivedAtMs(db, lane);
  await reclaimFreePages(ctx);
  return deleted.n;
}

async function discardCorrupt(ctx: OutboxContext, lane: Lane, corrupt: readonly StoredRecord[]): Promise<EvictionRow> {
  const { db, state, options } = ctx;
  const table = laneTable(lane);
  const seqs = [...new Set(corrupt.map((r) => r.seq))].sort((a, b) => a - b);
  if (seqs.length === 0) throw new RangeError('discardCorrupt needs at least one record');
  const atMs = Date.now();
  await db.run('BEGIN IMMEDIATE');
  let eviction: EvictionRow;
  try {
    // Read back what is really there: a row already drained or evicted is not counted twice.
    const rows = await db.all<{ seq: number; device_id: unknown; device_seq: unknown; kind: unknown; bytes: unknown }>(
      `SELECT seq, device_id, device_seq, kind, bytes FROM ${table} WHERE seq IN (${seqs.map(() => '?').join(', ')}) ORDER BY seq`,
      seqs,
    );
    if (rows.length === 0) throw new Error(`no row of ${seqs.join(', ')} left in ${table}`);
    await db.run(`DELETE FROM ${table} WHERE seq IN (${rows.map(() => '?').join(', ')})`, rows.map((r) => r.seq));
    const byDevice: Record<string, number> = {};
    const telemetrySeqs: { device_id: string; device_seq: number }[] = [];
    let bytes = 0;
    for (const row of rows) {
      // A corrupt row may hold anything in any column: count what can be read, and no more.
      const deviceId = typeof row.device_id === 'string' && DEVICE_ID_PATTERN.test(row.device_id) ? row.device_id : UNREADABLE_DEVICE_ID;
      byDevice[deviceId] = (byDevice[deviceId] ?? 0) + 1;
      bytes += Number.isSafeInteger(row.bytes) ? (row.bytes as number) : 0;
      if (lane === Lane.telemetry && row.kind === RecordKind.telemetry && deviceId !== UNREADABLE_DEVICE_ID && Number.isSafeInteger(row.device_seq) && (row.device_seq as number) >= 0) {
        telemetrySeqs.push({ device_id: deviceId, device_seq: row.device_seq as number });
      }
    }
    telemetrySeqs.sort((a, b) => (a.device_id < b.device_id ? -1 : a.device_id > b.device_id ? 1 : a.device_seq - b.device_seq));
    eviction = await insertEviction(db, {
      lane,
      reason: 'corrupt',
      firstSeq: rows[0]!.seq,
      lastSeq: rows.at(-1)!.seq,
      records: rows.length,
      bytes,
      byDevice,
      deviceSeqs: deviceSeqRanges(telemetrySeqs),
      atMs,
    });
    await db.run('COMMIT');
  } catch (err) {
    await rollbackQuietly(db);
    throw err;
  }
  state.records[lane] -= eviction.records;
  state.bytes[lane] -= eviction.bytes;
  state.evicted[lane] += eviction.records;
  state.evictedBytes += eviction.bytes;
  state.oldestReceivedAtMs[lane] = await readOldestReceivedAtMs(db, lane);
  options.logger?.error({ path: options.path, lane, seqs, records: eviction.records }, 'corrupt outbox rows discarded and reported as lost');
  notifyEviction(options, eviction);
  return eviction;
}
