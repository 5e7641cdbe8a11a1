/**
 * The durable SQLite outbox (DESIGN section 2): append-only lanes with never-reused seqs,
 * group commit, a byte bound enforced by counted evictions, and a bounded dead-letter table.
 *
 * One connection does everything, and every use of it goes through one FIFO lock: sqlite3
 * does not isolate statements of one connection, so a read issued while a batch transaction
 * is open would see rows that may still be rolled back.
 */
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { DEVICE_ID_PATTERN, ErrorCode, Lane, OutpostError, RecordKind, isOutpostError } from '@outpost/shared';
import {
  assertOwnedBy,
  assertSynchronous,
  assertWal,
  checkIsNewDatabase,
  COUNTER,
  DEFAULT_BUSY_TIMEOUT_MS,
  DEFAULT_JOURNAL_SIZE_LIMIT_BYTES,
  EVICTED_COUNTER,
  LANE_TABLE,
  LANES,
  migrate,
  readMeta,
  rollbackQuietly,
  setMaxFileBytes,
  warnWithoutIncrementalVacuum,
  type Meta,
} from './outbox-schema.js';
import { openDatabase } from './sqlite.js';
import type { Database, SqlValue, SqliteError } from './sqlite.js';
import type {
  DeadLetterInput,
  EvictionRow,
  Outbox,
  OutboxOptions,
  OutboxRecordInput,
  OutboxStats,
  StoredDeadLetter,
  StoredRecord,
} from './outbox-types.js';

/** Fixed bytes each record counts on top of its body, device id and kind (row and index overhead). */
export const RECORD_OVERHEAD_BYTES = 48;
/** An eviction frees down to this fraction of `maxBytes`, so it happens once per ~10% of the bound, not per message. */
export const EVICT_TO_FRACTION = 0.9;
/** SQLITE_MAX_VARIABLE_NUMBER of the SQLite bundled with sqlite3 v6 (3.52): bound parameters per statement. */
const SQLITE_MAX_VARIABLE_NUMBER = 32_766;
/** Per record row: device_id, ts, device_seq, kind, body, bytes (received_at_ms is shared as ?1). */
const RECORD_PARAMS = 6;
const MAX_RECORDS_PER_INSERT = Math.floor((SQLITE_MAX_VARIABLE_NUMBER - 1) / RECORD_PARAMS);
/** Per dead-letter row: device_id, topic, reason, detail, payload (at_ms is shared as ?1). */
const DEAD_LETTER_PARAMS = 5;
const MAX_DEAD_LETTERS_PER_INSERT = Math.floor((SQLITE_MAX_VARIABLE_NUMBER - 1) / DEAD_LETTER_PARAMS);
/** Rows fetched per step while finding how far an eviction must go. */
const EVICTION_SCAN_ROWS = 4_096;
/** Free pages (4 KiB each by default) that trigger an incremental vacuum. */
const VACUUM_MIN_FREE_PAGES = 256;
/** Pages one incremental vacuum returns to the file system, so it never stalls commits for long. */
const VACUUM_MAX_PAGES_PER_RUN = 2_048;

/** Oldest telemetry goes first; events only once telemetry is empty (DESIGN section 2). */
const EVICTION_ORDER: readonly Lane[] = [Lane.telemetry, Lane.events];
/** Device-seq ranges an eviction reports per device; beyond, the rest stay unexplained gaps (never explained wrongly). */
export const MAX_EVICTED_SEQ_RANGES = 64;
/** How a corrupt row whose device id cannot be read is counted in an eviction's byDevice. */
export const UNREADABLE_DEVICE_ID = '(unreadable)';
/** A dead letter's report upstream keeps at most this much of its detail. */
const DEAD_LETTER_REPORT_DETAIL_CHARS = 200;
/** Kinds are TEXT up to this long (UplinkRecordSchema). */
const MAX_KIND_CHARS = 64;

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
 * The events-lane record that reports a dead letter upstream (DESIGN section 2: the gap a
 * refused payload leaves is explained), committed with it; none for a publish of no device.
 */
function deadLetterReport(deadLetter: DeadLetterInput): PendingRecord | undefined {
  if (deadLetter.deviceId === null) return undefined;
  const atMs = Date.now();
  const body = JSON.stringify({
    reason: deadLetter.reason,
    topic: deadLetter.topic,
    detail: deadLetter.detail.slice(0, DEAD_LETTER_REPORT_DETAIL_CHARS),
    ...(deadLetter.deviceSeq === undefined ? {} : { seq: deadLetter.deviceSeq }),
  });
  const record: OutboxRecordInput = { lane: Lane.events, deviceId: deadLetter.deviceId, ts: atMs, deviceSeq: deadLetter.deviceSeq, kind: RecordKind.deadLetter, body };
  // Its seq is not needed: the dead letter's promise settles with the batch.
  return { type: 'record', record, bytes: measureRecordBytes(record), resolve: () => undefined, reject: () => undefined };
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

/** The SQLite outbox: the Outbox contract plus introspection used by tests and diagnostics. */
export interface SqliteOutbox extends Outbox {
  /** Reads the pragmas of the live connection. */
  pragmas(): Promise<OutboxPragmas>;
  /** `PRAGMA integrity_check`: 'ok', or the problems SQLite found, one per line. */
  integrityCheck(): Promise<string>;
}

/** Bytes a record counts against `maxBytes`: body, device id and kind in UTF-8 plus RECORD_OVERHEAD_BYTES. */
export function measureRecordBytes(record: Pick<OutboxRecordInput, 'deviceId' | 'kind' | 'body'>): number {
  return Buffer.byteLength(record.body) + Buffer.byteLength(record.deviceId) + Buffer.byteLength(record.kind) + RECORD_OVERHEAD_BYTES;
}

interface PendingRecord {
  type: 'record';
  record: OutboxRecordInput;
  bytes: number;
  resolve(seq: number): void;
  reject(err: Error): void;
}

interface PendingDeadLetter {
  type: 'dead-letter';
  deadLetter: DeadLetterInput;
  /** Its report upstream (an events-lane record), committed in the same transaction; none without a device. */
  report: PendingRecord | undefined;
  resolve(): void;
  reject(err: Error): void;
}

type Pending = PendingRecord | PendingDeadLetter;

/** What the in-memory counters hold; loaded at open, changed only after a COMMIT. */
interface State {
  records: Record<Lane, number>;
  bytes: Record<Lane, number>;
  oldestReceivedAtMs: Record<Lane, number | undefined>;
  evicted: Record<Lane, number>;
  evictedBytes: number;
  deadLetters: number;
  deadLettersDropped: number;
  commits: number;
  committedRecords: number;
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

/** What one committed batch changed, applied to State only after COMMIT returned. */
interface BatchOutcome {
  seqs: Map<PendingRecord, number>;
  evictions: EvictionRow[];
  /** New head of each lane an eviction cut into. */
  oldestAfterEviction: Partial<Record<Lane, number | undefined>>;
  deadLettersDropped: number;
}

/**
 * Opens (creating if missing) the outbox database at `options.path` and checks it is safe to
 * write to: WAL, the synchronous level of `options.durability` read back, our schema, our agent.
 *
 * @throws OutpostError CONFIG_INVALID for bad options, OUTBOX_UNSAFE when the database cannot
 *   give the promised durability or belongs to another agent, STORAGE_FAILED when SQLite fails.
 */
export async function openOutbox(options: OutboxOptions): Promise<SqliteOutbox> {
  validateOptions(options);
  const { path } = options;
  let db: Database;
  try {
    await mkdir(dirname(path), { recursive: true });
    db = await openDatabase(path);
  } catch (err) {
    throw storageFailed(`cannot open outbox database ${path}`, err, { path });
  }
  try {
    // The open flow, in order: auto_vacuum must be set before the first table exists.
    const isNew = await checkIsNewDatabase(db);
    if (isNew) await db.exec('PRAGMA auto_vacuum = INCREMENTAL');
    await assertWal(db);
    await assertSynchronous(db, options.durability);
    await db.exec(`PRAGMA busy_timeout = ${DEFAULT_BUSY_TIMEOUT_MS}; PRAGMA journal_size_limit = ${DEFAULT_JOURNAL_SIZE_LIMIT_BYTES}`);
    if (options.maxFileBytes !== undefined) await setMaxFileBytes(db, options.maxFileBytes, options.logger);
    await migrate(db, options.agentId, isNew, options.logger);
    const meta = await readMeta(db, path);
    assertOwnedBy(meta, options.agentId, path);
    await warnWithoutIncrementalVacuum(db, path, options.logger);
    const state = await loadState(db);
    return createOutbox(db, options, meta, state);
  } catch (err) {
    await db.close().catch(() => undefined);
    if (isOutpostError(err)) throw err;
    throw storageFailed(`cannot open outbox database ${path}`, err, { path });
  }
}

/** Config is validated by the agent-config schema; this catches direct callers, all problems at once. */
function validateOptions(options: OutboxOptions): void {
  const problems: string[] = [];
  const positiveInt = (key: keyof OutboxOptions, value: unknown): void => {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) problems.push(`${key}: must be a positive integer`);
  };
  if (typeof options.path !== 'string' || options.path.length === 0) problems.push('path: must be a non-empty string');
  if (typeof options.agentId !== 'string' || options.agentId.length === 0) problems.push('agentId: must be a non-empty string');
  if (options.durability !== 'power' && options.durability !== 'process') problems.push("durability: must be 'power' or 'process'");
  positiveInt('maxBytes', options.maxBytes);
  positiveInt('deadLetterMaxRows', options.deadLetterMaxRows);
  positiveInt('maxRecordsPerCommit', options.maxRecordsPerCommit);
  if (options.maxFileBytes !== undefined) positiveInt('maxFileBytes', options.maxFileBytes);
  if (problems.length > 0) {
    throw new OutpostError(ErrorCode.CONFIG_INVALID, `invalid outbox options:\n${problems.join('\n')}`, { details: { problems } });
  }
}

async function loadState(db: Database): Promise<State> {
  const state: State = {
    records: { events: 0, telemetry: 0 },
    bytes: { events: 0, telemetry: 0 },
    oldestReceivedAtMs: { events: undefined, telemetry: undefined },
    evicted: { events: 0, telemetry: 0 },
    evictedBytes: 0,
    deadLetters: 0,
    deadLettersDropped: 0,
    commits: 0,
    committedRecords: 0,
  };
  for (const lane of LANES) {
    const row = await db.get<{ n: number; b: number }>(`SELECT COUNT(*) AS n, COALESCE(SUM(bytes), 0) AS b FROM ${LANE_TABLE[lane]}`);
    state.records[lane] = row?.n ?? 0;
    state.bytes[lane] = row?.b ?? 0;
    state.oldestReceivedAtMs[lane] = await readOldestReceivedAtMs(db, lane);
  }
  state.deadLetters = (await db.get<{ n: number }>('SELECT COUNT(*) AS n FROM dead_letters'))?.n ?? 0;
  const counters = new Map((await db.all<{ name: string; value: number }>('SELECT name, value FROM counters')).map((row) => [row.name, row.value]));
  for (const lane of LANES) state.evicted[lane] = counters.get(EVICTED_COUNTER[lane]) ?? 0;
  state.evictedBytes = counters.get(COUNTER.evictedBytes) ?? 0;
  state.deadLettersDropped = counters.get(COUNTER.deadLettersDropped) ?? 0;
  return state;
}

async function readOldestReceivedAtMs(db: Database, lane: Lane): Promise<number | undefined> {
  return (await db.get<{ received_at_ms: number }>(`SELECT received_at_ms FROM ${LANE_TABLE[lane]} ORDER BY seq LIMIT 1`))?.received_at_ms;
}

function createOutbox(db: Database, options: OutboxOptions, meta: Meta, state: State): SqliteOutbox {
  const { maxBytes, maxRecordsPerCommit, deadLetterMaxRows, logger, onEviction, onCommit, path } = options;
  const queue: Pending[] = [];
  let draining: Promise<void> | undefined;
  let closing: Promise<void> | undefined;
  let lockTail: Promise<void> = Promise.resolve();

  /** Runs `fn` alone on the connection, in call order. */
  function withLock<T>(fn: () => Promise<T>): Promise<T> {
    const result = lockTail.then(fn);
    lockTail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  function closedError(): OutpostError {
    return new OutpostError(ErrorCode.OUTBOX_CLOSED, `outbox ${path} is closed`, { details: { path } });
  }

  /** Reads and deletes share the lock with commits, so they only ever see committed rows. */
  function useDb<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (closing !== undefined) return Promise.reject(closedError());
    return withLock(async () => {
      try {
        return await fn();
      } catch (err) {
        if (isOutpostError(err)) throw err;
        throw storageFailed(`outbox ${what} failed`, err, { path });
      }
    });
  }

  function enqueue(item: Pending): void {
    queue.push(item);
    // The drain starts on the next microtask, so appends made in the same tick share a
    // transaction; later ones wait for the running transaction and form the next: no timer.
    draining ??= drain();
  }

  async function drain(): Promise<void> {
    await Promise.resolve();
    try {
      while (queue.length > 0) {
        const batch = takeBatch();
        await withLock(() => commitBatch(batch));
      }
    } finally {
      draining = undefined;
    }
  }

  /** Up to maxRecordsPerCommit items, FIFO, whose records sum to at most maxBytes so one eviction can make room. */
  function takeBatch(): Pending[] {
    let count = 0;
    let bytes = 0;
    while (count < queue.length && count < maxRecordsPerCommit) {
      const item = queue[count];
      const itemBytes = item?.type === 'record' ? item.bytes : (item?.report?.bytes ?? 0);
      if (count > 0 && bytes + itemBytes > maxBytes) break;
      bytes += itemBytes;
      count += 1;
    }
    return queue.splice(0, count);
  }

  /** Never throws: settles every item of the batch. */
  async function commitBatch(batch: Pending[]): Promise<void> {
    const atMs = Date.now();
    const deadLetters = batch.filter((item): item is PendingDeadLetter => item.type === 'dead-letter');
    const records = batch.flatMap((item) => (item.type === 'record' ? [item] : item.report === undefined ? [] : [item.report]));
    let outcome: BatchOutcome;
    try {
      outcome = await writeBatch(records, deadLetters, atMs);
    } catch (cause) {
      // SQLITE_FULL and I/O errors may already have rolled the transaction back; ROLLBACK is then a no-op error.
      await rollbackQuietly(db);
      const code = (cause as SqliteError | undefined)?.code;
      logger?.error({ err: cause, path, records: records.length, deadLetters: deadLetters.length }, 'outbox commit failed; batch rejected');
      const err = storageFailed(`outbox commit of ${batch.length} items failed${code ? ` (${code})` : ''}`, cause, { path, sqliteCode: code });
      for (const item of batch) item.reject(err);
      return;
    }
    applyCommitted(records, deadLetters, outcome, atMs);
    for (const eviction of outcome.evictions) {
      try {
        onEviction?.(eviction);
      } catch (err) {
        logger?.error({ err, eviction }, 'onEviction callback threw');
      }
    }
    for (const item of records) item.resolve(outcome.seqs.get(item) ?? 0);
    for (const item of deadLetters) item.resolve();
    if (records.length > 0) {
      try {
        onCommit?.(records.length);
      } catch (err) {
        logger?.error({ err }, 'onCommit callback threw');
      }
    }
    if (outcome.evictions.length > 0 || outcome.deadLettersDropped > 0) await reclaimFreePages();
  }

  /** The batch transaction: evict to make room, one multi-row INSERT per lane, dead letters, COMMIT. */
  async function writeBatch(records: PendingRecord[], deadLetters: PendingDeadLetter[], atMs: number): Promise<BatchOutcome> {
    const outcome: BatchOutcome = { seqs: new Map(), evictions: [], oldestAfterEviction: {}, deadLettersDropped: 0 };
    const incomingBytes = records.reduce((sum, item) => sum + item.bytes, 0);
    const lane = records[0]?.record.lane;
    if (
      deadLetters.length === 0 &&
      records.length <= MAX_RECORDS_PER_INSERT &&
      lane !== undefined &&
      records.every((item) => item.record.lane === lane) &&
      state.bytes.events + state.bytes.telemetry + incomingBytes <= maxBytes
    ) {
      // The common case: one INSERT is its own atomic, durable transaction (synchronous
      // FULL syncs at its implicit commit). BEGIN and COMMIT would cost two more round trips
      // to the sqlite3 thread pool per batch.
      await insertRecords(lane, records, atMs, outcome.seqs);
      return outcome;
    }
    await db.run('BEGIN IMMEDIATE');
    await evictFor(incomingBytes, atMs, outcome);
    for (const lane of LANES) {
      const laneRecords = records.filter((item) => item.record.lane === lane);
      for (let start = 0; start < laneRecords.length; start += MAX_RECORDS_PER_INSERT) {
        await insertRecords(lane, laneRecords.slice(start, start + MAX_RECORDS_PER_INSERT), atMs, outcome.seqs);
      }
    }
    for (let start = 0; start < deadLetters.length; start += MAX_DEAD_LETTERS_PER_INSERT) {
      await insertDeadLetters(deadLetters.slice(start, start + MAX_DEAD_LETTERS_PER_INSERT), atMs);
    }
    if (deadLetters.length > 0 && state.deadLetters + deadLetters.length > deadLetterMaxRows) {
      // Keep the newest deadLetterMaxRows; ids are unique, so `id <` the cut row is exact.
      const dropped = await db.run(
        'DELETE FROM dead_letters WHERE id < (SELECT id FROM dead_letters ORDER BY id DESC LIMIT 1 OFFSET ?)',
        [deadLetterMaxRows - 1],
      );
      outcome.deadLettersDropped = dropped.changes;
      await addToCounter(COUNTER.deadLettersDropped, dropped.changes);
    }
    await db.run('COMMIT');
    return outcome;
  }

  /**
   * One multi-row INSERT whose rows come from a single JSON parameter (json_each), not one
   * placeholder per value: binding thousands of parameters cost more main-thread time than
   * the insert itself, and the SQL text stays the same for every batch.
   */
  async function insertRecords(lane: Lane, chunk: PendingRecord[], atMs: number, seqs: Map<PendingRecord, number>): Promise<void> {
    const rows = JSON.stringify(chunk.map(({ record, bytes }) => [record.deviceId, record.ts, record.deviceSeq ?? null, record.kind, record.body, bytes]));
    const result = await db.run(
      `INSERT INTO ${LANE_TABLE[lane]} (device_id, ts, device_seq, kind, body, received_at_ms, bytes)
       SELECT value->>0, value->>1, value->>2, value->>3, value->>4, ?1, value->>5 FROM json_each(?2) ORDER BY key`,
      [atMs, rows],
    );
    if (result.changes !== chunk.length) throw new Error(`inserted ${result.changes} rows, expected ${chunk.length}`);
    // One statement on our only connection: AUTOINCREMENT hands out consecutive rowids in row order.
    const firstSeq = result.lastID - chunk.length + 1;
    chunk.forEach((item, i) => seqs.set(item, firstSeq + i));
  }

  async function insertDeadLetters(chunk: PendingDeadLetter[], atMs: number): Promise<void> {
    const params: SqlValue[] = [atMs];
    const values: string[] = [];
    for (const { deadLetter } of chunk) {
      const p = params.length + 1;
      values.push(`(?${p}, ?${p + 1}, ?${p + 2}, ?${p + 3}, ?${p + 4}, ?1)`);
      params.push(deadLetter.deviceId, deadLetter.topic, deadLetter.reason, deadLetter.detail, deadLetter.payload);
    }
    await db.run(`INSERT INTO dead_letters (device_id, topic, reason, detail, payload, at_ms) VALUES ${values.join(', ')}`, params);
  }

  /**
   * Inside the batch transaction: when the batch would push the total past maxBytes, drop the
   * oldest records down to EVICT_TO_FRACTION of it, telemetry first, events only when telemetry
   * is empty. Each lane cut is one evictions row with its exact range and per-device counts.
   */
  async function evictFor(incomingBytes: number, atMs: number, outcome: BatchOutcome): Promise<void> {
    const totalBytes = state.bytes.events + state.bytes.telemetry;
    if (totalBytes + incomingBytes <= maxBytes) return;
    let needBytes = totalBytes + incomingBytes - Math.floor(maxBytes * EVICT_TO_FRACTION);
    for (const lane of EVICTION_ORDER) {
      if (needBytes <= 0) break;
      if (state.records[lane] === 0) continue;
      const eviction = await evictOldest(lane, needBytes, atMs);
      if (eviction === undefined) continue;
      needBytes -= eviction.bytes;
      outcome.evictions.push(eviction);
      outcome.oldestAfterEviction[lane] = await readOldestReceivedAtMs(db, lane);
    }
  }

  async function evictOldest(lane: Lane, needBytes: number, atMs: number): Promise<EvictionRow | undefined> {
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
    return insertEviction({ lane, reason: 'full', firstSeq, lastSeq, records, bytes, byDevice, deviceSeqs, atMs });
  }

  /** Inside a transaction: the evictions row and the counters it moves. */
  async function insertEviction(eviction: Omit<EvictionRow, 'id'>): Promise<EvictionRow> {
    const { lane, reason, firstSeq, lastSeq, records, bytes, byDevice, deviceSeqs, atMs } = eviction;
    const inserted = await db.run(
      'INSERT INTO evictions (lane, reason, first_seq, last_seq, records, bytes, by_device, device_seqs, at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      [lane, reason, firstSeq, lastSeq, records, bytes, JSON.stringify(byDevice), JSON.stringify(deviceSeqs), atMs],
    );
    await addToCounter(EVICTED_COUNTER[lane], records);
    await addToCounter(COUNTER.evictedBytes, bytes);
    return { id: inserted.lastID, ...eviction };
  }

  async function discardCorrupt(lane: Lane, corrupt: readonly StoredRecord[]): Promise<EvictionRow> {
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
      eviction = await insertEviction({
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
    logger?.error({ path, lane, seqs, records: eviction.records }, 'corrupt outbox rows discarded and reported as lost');
    try {
      onEviction?.(eviction);
    } catch (err) {
      logger?.error({ err, eviction }, 'onEviction callback threw');
    }
    return eviction;
  }

  async function addToCounter(name: string, delta: number): Promise<void> {
    await db.run('UPDATE counters SET value = value + ? WHERE name = ?', [delta, name]);
  }

  function applyCommitted(records: PendingRecord[], deadLetters: PendingDeadLetter[], outcome: BatchOutcome, atMs: number): void {
    for (const eviction of outcome.evictions) {
      state.records[eviction.lane] -= eviction.records;
      state.bytes[eviction.lane] -= eviction.bytes;
      state.evicted[eviction.lane] += eviction.records;
      state.evictedBytes += eviction.bytes;
    }
    for (const lane of LANES) {
      if (lane in outcome.oldestAfterEviction) state.oldestReceivedAtMs[lane] = outcome.oldestAfterEviction[lane];
    }
    for (const item of records) {
      const { lane } = item.record;
      state.records[lane] += 1;
      state.bytes[lane] += item.bytes;
      state.oldestReceivedAtMs[lane] ??= atMs;
    }
    state.deadLetters += deadLetters.length - outcome.deadLettersDropped;
    state.deadLettersDropped += outcome.deadLettersDropped;
    state.commits += 1;
    state.committedRecords += records.length;
  }

  /**
   * Returns free pages to the file system once enough have piled up. Runs under the lock,
   * after a commit, in bounded steps; a failure only means the file stays larger for now.
   */
  async function reclaimFreePages(): Promise<void> {
    try {
      const free = (await db.get<{ freelist_count: number }>('PRAGMA freelist_count'))?.freelist_count ?? 0;
      if (free < VACUUM_MIN_FREE_PAGES) return;
      // exec, not run: incremental_vacuum frees one page per step and run() steps once.
      await db.exec(`PRAGMA incremental_vacuum(${VACUUM_MAX_PAGES_PER_RUN})`);
    } catch (err) {
      logger?.warn({ err, path }, 'outbox incremental vacuum failed');
    }
  }

  async function deleteThrough(lane: Lane, seq: number): Promise<number> {
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
    await reclaimFreePages();
    return deleted.n;
  }

  return {
    agentId: meta.agentId,
    epoch: meta.epoch,
    path,

    append(record) {
      if (closing !== undefined) return Promise.reject(closedError());
      let bytes: number;
      try {
        laneTable(record.lane);
        bytes = measureRecordBytes(record);
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new Error(String(err)));
      }
      if (bytes > maxBytes) {
        return Promise.reject(
          new OutpostError(ErrorCode.OUTBOX_FULL, `record of ${bytes} bytes is larger than the outbox bound of ${maxBytes} bytes`, {
            details: { path, bytes, maxBytes, deviceId: record.deviceId, kind: record.kind },
          }),
        );
      }
      // Copy the fields now: the caller may reuse its object before the batch commits.
      const snapshot: OutboxRecordInput = {
        lane: record.lane,
        deviceId: record.deviceId,
        ts: record.ts,
        deviceSeq: record.deviceSeq,
        kind: record.kind,
        body: record.body,
      };
      return new Promise<number>((resolve, reject) => enqueue({ type: 'record', record: snapshot, bytes, resolve, reject }));
    },

    appendDeadLetter(deadLetter) {
      if (closing !== undefined) return Promise.reject(closedError());
      const snapshot: DeadLetterInput = { ...deadLetter };
      const report = deadLetterReport(snapshot);
      return new Promise<void>((resolve, reject) => enqueue({ type: 'dead-letter', deadLetter: snapshot, report, resolve, reject }));
    },

    discardCorrupt(lane, records) {
      return useDb('discardCorrupt', () => discardCorrupt(lane, records));
    },

    deviceWindow() {
      return useDb('deviceWindow', async () => {
        const rows = await db.all<{ device_id: string; device_seq: number; ts: number; at_ms: number }>('SELECT device_id, device_seq, ts, at_ms FROM device_window ORDER BY at_ms');
        return rows.map((row) => ({ deviceId: row.device_id, deviceSeq: row.device_seq, ts: row.ts, atMs: row.at_ms }));
      });
    },

    pruneDeviceWindow(keepDevices) {
      return useDb('pruneDeviceWindow', async () => {
        const result = await db.run(
          `DELETE FROM device_window WHERE device_id NOT IN
             (SELECT device_id FROM device_window GROUP BY device_id ORDER BY MAX(at_ms) DESC LIMIT ?)`,
          [Math.max(0, Math.floor(keepDevices))],
        );
        return result.changes;
      });
    },

    read(lane, afterSeq, limit) {
      return useDb('read', async () => {
        if (limit <= 0) return [];
        // json_valid runs in SQLite's thread, not ours: a corrupt body is found without parsing every body here.
        const rows = await db.all<LaneRow & { body_valid: number }>(
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
      return useDb('deleteThrough', () => deleteThrough(lane, seq));
    },

    evictions(afterId = 0) {
      return useDb('evictions', async () => {
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
      return useDb('deadLetters', async () => {
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

    pragmas() {
      return useDb('pragmas', async () => {
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
      return useDb('integrity check', async () => {
        const rows = await db.all<{ integrity_check: string }>('PRAGMA integrity_check');
        return rows.map((r) => r.integrity_check).join('\n');
      });
    },

    stats(): OutboxStats {
      const oldest = LANES.map((lane) => state.oldestReceivedAtMs[lane]).filter((ms): ms is number => ms !== undefined);
      return {
        records: { ...state.records },
        bytes: state.bytes.events + state.bytes.telemetry,
        maxBytes,
        evicted: { ...state.evicted },
        evictedBytes: state.evictedBytes,
        deadLetters: state.deadLetters,
        deadLettersDropped: state.deadLettersDropped,
        commits: state.commits,
        committedRecords: state.committedRecords,
        oldestReceivedAtMs: oldest.length > 0 ? Math.min(...oldest) : undefined,
      };
    },

    close() {
      closing ??= (async () => {
        // Appends accepted before close still commit; `draining` is replaced while work remains.
        while (draining !== undefined) await draining;
        await withLock(() => db.close()).catch((err: unknown) => {
          throw storageFailed(`closing outbox ${path} failed`, err, { path });
        });
      })();
      return closing;
    },
  };
}

/** The table of `lane`; throws for anything else, since lanes are interpolated into SQL. */
function laneTable(lane: Lane): string {
  if (!Object.hasOwn(LANE_TABLE, lane)) throw new TypeError(`unknown outbox lane ${JSON.stringify(lane)}`);
  return LANE_TABLE[lane];
}

function storageFailed(message: string, cause: unknown, details: Record<string, unknown>): OutpostError {
  return new OutpostError(ErrorCode.STORAGE_FAILED, message, { cause, details });
}
