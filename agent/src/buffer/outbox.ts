/**
 * The durable SQLite outbox (DESIGN section 2): append-only lanes with never-reused seqs,
 * group commit, a byte bound enforced by counted evictions, and a bounded dead-letter table.
 *
 * One connection does everything, and every use of it goes through one FIFO lock: sqlite3
 * does not isolate statements of one connection, so a read issued while a batch transaction
 * is open would see rows that may still be rolled back.
 */
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ErrorCode, Lane, OutpostError, isOutpostError } from '@outpost/shared';
import type { Logger } from '@outpost/shared';
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
/** Timeout for a lock held by another connection (an operator's sqlite3 shell), ms. */
export const DEFAULT_BUSY_TIMEOUT_MS = 5_000;
/** The WAL file is truncated back to this size after a checkpoint, bytes. */
export const DEFAULT_JOURNAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024;

const SCHEMA_VERSION = 1;
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

/** Table of each lane. Lanes are interpolated into SQL, so only these names ever reach it. */
const LANE_TABLE: Readonly<Record<Lane, string>> = { events: 'events', telemetry: 'telemetry' };
const LANES: readonly Lane[] = [Lane.events, Lane.telemetry];
/** Oldest telemetry goes first; events only once telemetry is empty (DESIGN section 2). */
const EVICTION_ORDER: readonly Lane[] = [Lane.telemetry, Lane.events];

const COUNTER = {
  evictedEvents: 'evicted_events',
  evictedTelemetry: 'evicted_telemetry',
  evictedBytes: 'evicted_bytes',
  deadLettersDropped: 'dead_letters_dropped',
} as const;
const EVICTED_COUNTER: Readonly<Record<Lane, string>> = { events: COUNTER.evictedEvents, telemetry: COUNTER.evictedTelemetry };

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
  resolve(): void;
  reject(err: Error): void;
}

type Pending = PendingRecord | PendingDeadLetter;

interface Meta {
  agentId: string;
  epoch: string;
  createdAtMs: number;
}

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
    if (isNew) await createSchema(db, options.agentId);
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

/** True for an empty file; refuses a database that has tables but is not an outbox. */
async function checkIsNewDatabase(db: Database): Promise<boolean> {
  const rows = await db.all<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'");
  if (rows.length === 0) return true;
  if (rows.some((row) => row.name === 'meta')) return false;
  throw new OutpostError(ErrorCode.OUTBOX_UNSAFE, `${db.path} is an SQLite database but not an Outpost outbox (no meta table)`, {
    details: { path: db.path, tables: rows.map((row) => row.name) },
  });
}

async function assertWal(db: Database): Promise<void> {
  const row = await db.get<{ journal_mode: string }>('PRAGMA journal_mode = WAL');
  // WAL is refused e.g. on file systems without shared memory; rollback journals would change the durability story.
  if (row?.journal_mode !== 'wal') {
    throw new OutpostError(ErrorCode.OUTBOX_UNSAFE, `${db.path}: journal_mode is '${row?.journal_mode}', not 'wal'`, {
      details: { path: db.path, journalMode: row?.journal_mode },
    });
  }
}

async function assertSynchronous(db: Database, durability: OutboxOptions['durability']): Promise<void> {
  const expected = durability === 'power' ? 2 : 1;
  await db.exec(`PRAGMA synchronous = ${durability === 'power' ? 'FULL' : 'NORMAL'}`);
  // synchronous is per connection and a WAL database can come back at NORMAL: read it back, always.
  const row = await db.get<{ synchronous: number }>('PRAGMA synchronous');
  if (row?.synchronous !== expected) {
    throw new OutpostError(
      ErrorCode.OUTBOX_UNSAFE,
      `${db.path}: synchronous is ${row?.synchronous}, durability '${durability}' needs ${expected}`,
      { details: { path: db.path, durability, expected, actual: row?.synchronous } },
    );
  }
}

async function setMaxFileBytes(db: Database, maxFileBytes: number, logger: Logger | undefined): Promise<void> {
  const pageSize = (await db.get<{ page_size: number }>('PRAGMA page_size'))?.page_size ?? 4096;
  const wanted = Math.max(1, Math.floor(maxFileBytes / pageSize));
  const row = await db.get<{ max_page_count: number }>(`PRAGMA max_page_count = ${wanted}`);
  // SQLite never sets the cap below the current page count: a file already larger keeps its size as the cap.
  if (row !== undefined && row.max_page_count !== wanted) {
    logger?.warn({ path: db.path, maxFileBytes, capBytes: row.max_page_count * pageSize }, 'outbox file is already larger than maxFileBytes');
  }
}

const SCHEMA_SQL = `
CREATE TABLE meta (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  agent_id TEXT NOT NULL,
  epoch TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL
);
${LANES.map(
  (lane) => `CREATE TABLE ${LANE_TABLE[lane]} (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  device_id TEXT NOT NULL,
  ts INTEGER NOT NULL,
  device_seq INTEGER,
  kind TEXT NOT NULL,
  body TEXT NOT NULL,
  received_at_ms INTEGER NOT NULL,
  bytes INTEGER NOT NULL
);`,
).join('\n')}
CREATE TABLE dead_letters (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  device_id TEXT,
  topic TEXT NOT NULL,
  reason TEXT NOT NULL,
  detail TEXT NOT NULL,
  payload BLOB NOT NULL,
  at_ms INTEGER NOT NULL
);
CREATE TABLE evictions (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  lane TEXT NOT NULL,
  first_seq INTEGER NOT NULL,
  last_seq INTEGER NOT NULL,
  records INTEGER NOT NULL,
  bytes INTEGER NOT NULL,
  by_device TEXT NOT NULL,
  at_ms INTEGER NOT NULL
);
CREATE TABLE counters (
  name TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO counters (name, value) VALUES ${Object.values(COUNTER)
  .map((name) => `('${name}', 0)`)
  .join(', ')};
PRAGMA user_version = ${SCHEMA_VERSION};
`;

/** Creates the tables and mints the epoch, in one transaction: a crash leaves no half-made outbox. */
async function createSchema(db: Database, agentId: string): Promise<void> {
  await db.run('BEGIN IMMEDIATE');
  try {
    await db.exec(SCHEMA_SQL);
    await db.run('INSERT INTO meta (id, agent_id, epoch, created_at_ms) VALUES (1, ?, ?, ?)', [agentId, mintEpoch(), Date.now()]);
    await db.run('COMMIT');
  } catch (err) {
    await rollbackQuietly(db);
    throw err;
  }
}

/** Base36 creation time plus 64 random bits: unique per database, matches EpochSchema (^[0-9a-z]{8,40}$). */
function mintEpoch(): string {
  return Date.now().toString(36) + randomBytes(8).readBigUInt64BE().toString(36).padStart(13, '0');
}

async function readMeta(db: Database, path: string): Promise<Meta> {
  const version = (await db.get<{ user_version: number }>('PRAGMA user_version'))?.user_version;
  if (version !== SCHEMA_VERSION) {
    throw new OutpostError(ErrorCode.OUTBOX_UNSAFE, `${path}: outbox schema version ${version}, this agent knows ${SCHEMA_VERSION}`, {
      details: { path, schemaVersion: version },
    });
  }
  const row = await db.get<{ agent_id: string; epoch: string; created_at_ms: number }>('SELECT agent_id, epoch, created_at_ms FROM meta WHERE id = 1');
  if (row === undefined) throw new OutpostError(ErrorCode.OUTBOX_UNSAFE, `${path}: outbox meta row is missing`, { details: { path } });
  return { agentId: row.agent_id, epoch: row.epoch, createdAtMs: row.created_at_ms };
}

function assertOwnedBy(meta: Meta, agentId: string, path: string): void {
  if (meta.agentId === agentId) return;
  // Writing another agent's outbox would publish its seqs under our id: refuse, never adopt.
  throw new OutpostError(
    ErrorCode.OUTBOX_UNSAFE,
    `${path} belongs to agent '${meta.agentId}', not '${agentId}'; give each agent its own dataDir, or remove the file to re-provision`,
    { details: { path, agentId, ownerAgentId: meta.agentId, epoch: meta.epoch } },
  );
}

async function warnWithoutIncrementalVacuum(db: Database, path: string, logger: Logger | undefined): Promise<void> {
  const mode = (await db.get<{ auto_vacuum: number }>('PRAGMA auto_vacuum'))?.auto_vacuum;
  // auto_vacuum can only change by a full VACUUM; a file made elsewhere keeps working, it just never shrinks.
  if (mode !== 2) logger?.warn({ path, autoVacuum: mode }, 'outbox database is not in incremental auto_vacuum mode; freed pages are reused but the file will not shrink');
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
      const itemBytes = item?.type === 'record' ? item.bytes : 0;
      if (count > 0 && bytes + itemBytes > maxBytes) break;
      bytes += itemBytes;
      count += 1;
    }
    return queue.splice(0, count);
  }

  /** Never throws: settles every item of the batch. */
  async function commitBatch(batch: Pending[]): Promise<void> {
    const atMs = Date.now();
    const records = batch.filter((item): item is PendingRecord => item.type === 'record');
    const deadLetters = batch.filter((item): item is PendingDeadLetter => item.type === 'dead-letter');
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
    const deleted = await db.run(`DELETE FROM ${table} WHERE seq <= ?`, [lastSeq]);
    // The counters promise an exact count of what is missing; anything else aborts the batch.
    if (deleted.changes !== records) throw new Error(`eviction of ${table} deleted ${deleted.changes} rows, scanned ${records}`);
    const byDevice = Object.fromEntries(byDeviceRows.map((row) => [row.device_id, row.n]));
    const inserted = await db.run(
      'INSERT INTO evictions (lane, first_seq, last_seq, records, bytes, by_device, at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)',
      [lane, firstSeq, lastSeq, records, bytes, JSON.stringify(byDevice), atMs],
    );
    await addToCounter(EVICTED_COUNTER[lane], records);
    await addToCounter(COUNTER.evictedBytes, bytes);
    return { id: inserted.lastID, lane, firstSeq, lastSeq, records, bytes, byDevice, atMs };
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
      return new Promise<void>((resolve, reject) => enqueue({ type: 'dead-letter', deadLetter: snapshot, resolve, reject }));
    },

    read(lane, afterSeq, limit) {
      return useDb('read', async () => {
        if (limit <= 0) return [];
        const rows = await db.all<LaneRow>(
          `SELECT seq, device_id, ts, device_seq, kind, body, received_at_ms, bytes FROM ${laneTable(lane)} WHERE seq > ? ORDER BY seq LIMIT ?`,
          [afterSeq, limit],
        );
        return rows.map((row): StoredRecord => ({
          lane,
          seq: row.seq,
          deviceId: row.device_id,
          ts: row.ts,
          deviceSeq: row.device_seq ?? undefined,
          kind: row.kind,
          body: row.body,
          receivedAtMs: row.received_at_ms,
          bytes: row.bytes,
        }));
      });
    },

    deleteThrough(lane, seq) {
      return useDb('deleteThrough', () => deleteThrough(lane, seq));
    },

    evictions(afterId = 0) {
      return useDb('evictions', async () => {
        const rows = await db.all<EvictionDbRow>(
          'SELECT id, lane, first_seq, last_seq, records, bytes, by_device, at_ms FROM evictions WHERE id > ? ORDER BY id',
          [afterId],
        );
        return rows.map((row): EvictionRow => ({
          id: row.id,
          lane: row.lane,
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

async function rollbackQuietly(db: Database): Promise<void> {
  // "cannot rollback - no transaction is active" after SQLite rolled back by itself is expected.
  await db.run('ROLLBACK').catch(() => undefined);
}

function storageFailed(message: string, cause: unknown, details: Record<string, unknown>): OutpostError {
  return new OutpostError(ErrorCode.STORAGE_FAILED, message, { cause, details });
}
