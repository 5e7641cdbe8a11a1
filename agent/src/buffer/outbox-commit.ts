/**
 * Group commit (DESIGN section 2): appends wait in a FIFO queue, and whatever is waiting when
 * the previous transaction ends becomes the next one: eviction to make room, one multi-row
 * INSERT per lane, the dead letters, COMMIT. Promises settle only after COMMIT returned.
 */
import { ErrorCode, Lane, OutpostError, RecordKind } from '@outpost/shared';
import { addToCounter, closedError, laneTable, notifyEviction, storageFailed, type OutboxContext } from './outbox-context.js';
import { evictFor, type EvictionOutcome } from './outbox-eviction.js';
import { COUNTER, LANE_TABLE, LANES, rollbackQuietly } from './outbox-schema.js';
import type { Database, SqlValue, SqliteError } from './sqlite.js';
import type { AppendDone, DeadLetterInput, OutboxRecordInput } from './outbox-types.js';

/** Fixed bytes each record counts on top of its body, device id and kind (row and index overhead). */
export const RECORD_OVERHEAD_BYTES = 48;
/** SQLITE_MAX_VARIABLE_NUMBER of the SQLite bundled with sqlite3 v6 (3.52): bound parameters per statement. */
const SQLITE_MAX_VARIABLE_NUMBER = 32_766;
/**
 * Values per record row: device_id, ts, device_seq, kind, body, bytes. They are not bound
 * parameters: each row is one element of the JSON array bound as ?2 and read by json_each,
 * beside received_at_ms bound once as ?1, so an INSERT binds two parameters however many rows
 * it holds.
 */
const RECORD_PARAMS = 6;
/**
 * Records per INSERT statement. SQLITE_MAX_VARIABLE_NUMBER does not bound this any more (see
 * RECORD_PARAMS); the chunk keeps the size it had when each value was its own parameter, so a
 * batch is still cut at the same rows. The agent config caps maxRecordsPerCommit at 5,000,
 * below this, so only a direct caller of openOutbox sees a lane split over several INSERTs.
 */
const MAX_RECORDS_PER_INSERT = Math.floor((SQLITE_MAX_VARIABLE_NUMBER - 1) / RECORD_PARAMS);
/** Per dead-letter row, each a bound parameter: device_id, topic, reason, detail, payload (at_ms is shared as ?1). */
const DEAD_LETTER_PARAMS = 5;
const MAX_DEAD_LETTERS_PER_INSERT = Math.floor((SQLITE_MAX_VARIABLE_NUMBER - 1) / DEAD_LETTER_PARAMS);
/** Free pages (4 KiB each by default) that trigger an incremental vacuum. */
const VACUUM_MIN_FREE_PAGES = 256;
/** Pages one incremental vacuum returns to the file system, so it never stalls commits for long. */
const VACUUM_MAX_PAGES_PER_RUN = 2_048;
/** A dead letter's report upstream keeps at most this much of its detail. */
const DEAD_LETTER_REPORT_DETAIL_CHARS = 200;

/** Bytes a record counts against `maxBytes`: body, device id and kind in UTF-8 plus RECORD_OVERHEAD_BYTES. */
export function measureRecordBytes(record: Pick<OutboxRecordInput, 'deviceId' | 'kind' | 'body'>): number {
  return Buffer.byteLength(record.body) + Buffer.byteLength(record.deviceId) + Buffer.byteLength(record.kind) + RECORD_OVERHEAD_BYTES;
}

interface PendingRecord {
  type: 'record';
  record: OutboxRecordInput;
  bytes: number;
  done: AppendDone;
  /** Set by the INSERT; valid once the transaction committed. */
  seq: number;
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

/** What one committed batch changed, applied to State only after COMMIT returned. */
interface BatchOutcome extends EvictionOutcome {
  deadLettersDropped: number;
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
  return { type: 'record', record, bytes: measureRecordBytes(record), done: ignoreDone, seq: 0 };
}

const ignoreDone: AppendDone = () => undefined;

/** The queue of appends waiting for a transaction. */
export interface CommitQueue {
  /** Resolves with the record's seq once the transaction holding it has committed. */
  append(record: OutboxRecordInput): Promise<number>;
  /** The same with a callback (see Outbox.appendWith). */
  appendWith(record: OutboxRecordInput, done: AppendDone): void;
  /** Resolves once the dead letter (and its report upstream) has committed. */
  appendDeadLetter(deadLetter: DeadLetterInput): Promise<void>;
  /** The drain now running, if any; replaced by the next while work remains. */
  draining(): Promise<void> | undefined;
}

export function createCommitQueue(ctx: OutboxContext): CommitQueue {
  const { maxRecordsPerCommit, path } = ctx.options;
  const queue: Pending[] = [];
  let draining: Promise<void> | undefined;

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
        await ctx.withLock(() => commitBatch(ctx, batch));
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
      if (count > 0 && bytes + itemBytes > ctx.maxBytes) break;
      bytes += itemBytes;
      count += 1;
    }
    return queue.splice(0, count);
  }

  /** Checks and queues a record; returns the error instead when it cannot be queued. */
  function enqueueRecord(record: OutboxRecordInput, done: AppendDone): Error | undefined {
    if (ctx.closing) return closedError(path);
    let bytes: number;
    try {
      laneTable(record.lane);
      bytes = measureRecordBytes(record);
    } catch (err) {
      return err instanceof Error ? err : new Error(String(err));
    }
    const maxBytes = ctx.maxBytes;
    if (bytes > maxBytes) {
      return new OutpostError(ErrorCode.OUTBOX_FULL, `record of ${bytes} bytes is larger than the outbox bound of ${maxBytes} bytes`, {
        details: { path, bytes, maxBytes, deviceId: record.deviceId, kind: record.kind },
      });
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
    enqueue({ type: 'record', record: snapshot, bytes, done, seq: 0 });
    return undefined;
  }

  return {
    append(record) {
      return new Promise<number>((resolve, reject) => {
        const refused = enqueueRecord(record, (error, seq) => (error === null ? resolve(seq) : reject(error)));
        if (refused !== undefined) reject(refused);
      });
    },

    appendWith(record, done) {
      const refused = enqueueRecord(record, done);
      // Never synchronously: a caller's code after the call runs before its callback, as with a promise.
      if (refused !== undefined) queueMicrotask(() => done(refused, 0));
    },

    appendDeadLetter(deadLetter) {
      if (ctx.closing) return Promise.reject(closedError(path));
      const snapshot: DeadLetterInput = { ...deadLetter };
      const report = deadLetterReport(snapshot);
      return new Promise<void>((resolve, reject) => enqueue({ type: 'dead-letter', deadLetter: snapshot, report, resolve, reject }));
    },

    draining: () => draining,
  };
}

/** Never throws: settles every item of the batch. */
async function commitBatch(ctx: OutboxContext, batch: Pending[]): Promise<void> {
  const { db, options } = ctx;
  const { logger, onCommit, path } = options;
  const atMs = Date.now();
  const deadLetters = batch.filter((item): item is PendingDeadLetter => item.type === 'dead-letter');
  const records = batch.flatMap((item) => (item.type === 'record' ? [item] : item.report === undefined ? [] : [item.report]));
  let outcome: BatchOutcome;
  try {
    outcome = await writeBatch(ctx, records, deadLetters, atMs);
  } catch (cause) {
    // SQLITE_FULL and I/O errors may already have rolled the transaction back; ROLLBACK is then a no-op error.
    await rollbackQuietly(db);
    const code = (cause as SqliteError | undefined)?.code;
    logger?.error({ err: cause, path, records: records.length, deadLetters: deadLetters.length }, 'outbox commit failed; batch rejected');
    const err = storageFailed(`outbox commit of ${batch.length} items failed${code ? ` (${code})` : ''}`, cause, { path, sqliteCode: code });
    for (const item of batch) {
      if (item.type === 'record') item.done(err, 0);
      else item.reject(err);
    }
    return;
  }
  applyCommitted(ctx, records, deadLetters, outcome, atMs);
  for (const eviction of outcome.evictions) notifyEviction(options, eviction);
  for (const item of records) item.done(null, item.seq);
  for (const item of deadLetters) item.resolve();
  if (records.length > 0) {
    try {
      onCommit?.(records.length);
    } catch (err) {
      logger?.error({ err }, 'onCommit callback threw');
    }
  }
  if (outcome.evictions.length > 0 || outcome.deadLettersDropped > 0) await reclaimFreePages(ctx);
}

/** The batch transaction: evict to make room, one multi-row INSERT per lane, dead letters, COMMIT. */
async function writeBatch(ctx: OutboxContext, records: PendingRecord[], deadLetters: PendingDeadLetter[], atMs: number): Promise<BatchOutcome> {
  const { db, state } = ctx;
  const { deadLetterMaxRows } = ctx.options;
  const maxBytes = ctx.maxBytes;
  const outcome: BatchOutcome = { evictions: [], oldestAfterEviction: {}, deadLettersDropped: 0 };
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
    await insertRecords(db, lane, records, atMs);
    return outcome;
  }
  await db.run('BEGIN IMMEDIATE');
  await evictFor(ctx, incomingBytes, atMs, outcome);
  for (const lane of LANES) {
    const laneRecords = records.filter((item) => item.record.lane === lane);
    for (let start = 0; start < laneRecords.length; start += MAX_RECORDS_PER_INSERT) {
      await insertRecords(db, lane, laneRecords.slice(start, start + MAX_RECORDS_PER_INSERT), atMs);
    }
  }
  for (let start = 0; start < deadLetters.length; start += MAX_DEAD_LETTERS_PER_INSERT) {
    await insertDeadLetters(db, deadLetters.slice(start, start + MAX_DEAD_LETTERS_PER_INSERT), atMs);
  }
  if (deadLetters.length > 0 && state.deadLetters + deadLetters.length > deadLetterMaxRows) {
    // Keep the newest deadLetterMaxRows; ids are unique, so `id <` the cut row is exact.
    const dropped = await db.run(
      'DELETE FROM dead_letters WHERE id < (SELECT id FROM dead_letters ORDER BY id DESC LIMIT 1 OFFSET ?)',
      [deadLetterMaxRows - 1],
    );
    outcome.deadLettersDropped = dropped.changes;
    await addToCounter(db, COUNTER.deadLettersDropped, dropped.changes);
  }
  await db.run('COMMIT');
  return outcome;
}

/**
 * One multi-row INSERT whose rows come from a single JSON parameter (json_each), not one
 * placeholder per value: binding thousands of parameters cost more main-thread time than
 * the insert itself, and the SQL text stays the same for every batch. Each body is already
 * JSON text, so it goes into the array as JSON (read back with `->`, which returns the same
 * text), not as a string: no escaping here and no unescaping in SQLite. Device ids match
 * DEVICE_ID_PATTERN and so need no escaping either, but go through JSON.stringify anyway,
 * as kinds do: the JSON must stay valid whatever a caller passes.
 */
async function insertRecords(db: Database, lane: Lane, chunk: PendingRecord[], atMs: number): Promise<void> {
  let rows = '[';
  for (let i = 0; i < chunk.length; i++) {
    const { record, bytes } = chunk[i]!;
    if (i > 0) rows += ',';
    rows += `[${JSON.stringify(record.deviceId)},${record.ts},${record.deviceSeq ?? 'null'},${JSON.stringify(record.kind)},${record.body},${bytes}]`;
  }
  rows += ']';
  const result = await db.run(
    `INSERT INTO ${LANE_TABLE[lane]} (device_id, ts, device_seq, kind, body, received_at_ms, bytes)
       SELECT value->>0, value->>1, value->>2, value->>3, value->4, ?1, value->>5 FROM json_each(?2) ORDER BY key`,
    [atMs, rows],
  );
  if (result.changes !== chunk.length) throw new Error(`inserted ${result.changes} rows, expected ${chunk.length}`);
  // One statement on our only connection: AUTOINCREMENT hands out consecutive rowids in row order.
  const firstSeq = result.lastID - chunk.length + 1;
  for (let i = 0; i < chunk.length; i++) chunk[i]!.seq = firstSeq + i;
}

async function insertDeadLetters(db: Database, chunk: PendingDeadLetter[], atMs: number): Promise<void> {
  const params: SqlValue[] = [atMs];
  const values: string[] = [];
  for (const { deadLetter } of chunk) {
    const p = params.length + 1;
    values.push(`(?${p}, ?${p + 1}, ?${p + 2}, ?${p + 3}, ?${p + 4}, ?1)`);
    params.push(deadLetter.deviceId, deadLetter.topic, deadLetter.reason, deadLetter.detail, deadLetter.payload);
  }
  await db.run(`INSERT INTO dead_letters (device_id, topic, reason, detail, payload, at_ms) VALUES ${values.join(', ')}`, params);
}

function applyCommitted(ctx: OutboxContext, records: PendingRecord[], deadLetters: PendingDeadLetter[], outcome: BatchOutcome, atMs: number): void {
  const { state } = ctx;
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
 * after a commit or a delete, in bounded steps; a failure only means the file stays larger for now.
 */
export async function reclaimFreePages(ctx: OutboxContext): Promise<void> {
  const { db, options } = ctx;
  try {
    const free = (await db.get<{ freelist_count: number }>('PRAGMA freelist_count'))?.freelist_count ?? 0;
    if (free < VACUUM_MIN_FREE_PAGES) return;
    // exec, not run: incremental_vacuum frees one page per step and run() steps once.
    await db.exec(`PRAGMA incremental_vacuum(${VACUUM_MAX_PAGES_PER_RUN})`);
  } catch (err) {
    options.logger?.warn({ err, path: options.path }, 'outbox incremental vacuum failed');
  }
}
