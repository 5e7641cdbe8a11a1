/**
 * The durable SQLite outbox (DESIGN section 2): append-only lanes with never-reused seqs,
 * group commit, a byte bound enforced by counted evictions, and a bounded dead-letter table.
 *
 * This file is the open flow and the assembly. The parts, by job: outbox-schema.ts (tables,
 * migrations, checks at open), outbox-context.ts (the connection, its FIFO lock, the
 * counters), outbox-commit.ts (group commit), outbox-eviction.ts (the byte bound),
 * outbox-reads.ts (reads, deletes, corrupt rows). One connection writes, and every use of it
 * goes through the one lock; the uplink's reads have a read-only connection of their own.
 */
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ErrorCode, OutpostError, isOutpostError } from '@outpost/shared';
import { createCommitQueue } from './outbox-commit.js';
import { createOutboxContext, readOldestReceivedAtMs, storageFailed, type State } from './outbox-context.js';
import { createOutboxReads, type OutboxPragmas } from './outbox-reads.js';
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
  setMaxFileBytes,
  warnWithoutIncrementalVacuum,
  type Meta,
} from './outbox-schema.js';
import { openDatabase } from './sqlite.js';
import type { Database } from './sqlite.js';
import type { Outbox, OutboxOptions, OutboxStats } from './outbox-types.js';

/** The SQLite outbox: the Outbox contract plus introspection used by tests and diagnostics. */
export interface SqliteOutbox extends Outbox {
  /** Reads the pragmas of the live connection. */
  pragmas(): Promise<OutboxPragmas>;
  /** `PRAGMA integrity_check`: 'ok', or the problems SQLite found, one per line. */
  integrityCheck(): Promise<string>;
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
  let readDb: Database | undefined;
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
    readDb = await openDatabase(path, { readOnly: true });
    await readDb.exec(`PRAGMA busy_timeout = ${DEFAULT_BUSY_TIMEOUT_MS}`);
    return createOutbox(db, readDb, options, meta, state);
  } catch (err) {
    await readDb?.close().catch(() => undefined);
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

/** The open outbox: appends go to the commit queue, everything else to the reads, all under one lock. */
function createOutbox(db: Database, readDb: Database, options: OutboxOptions, meta: Meta, state: State): SqliteOutbox {
  const { path } = options;
  const ctx = createOutboxContext(db, readDb, options, state);
  const commits = createCommitQueue(ctx);
  let closed: Promise<void> | undefined;

  return {
    agentId: meta.agentId,
    epoch: meta.epoch,
    path,
    append: commits.append,
    appendWith: commits.appendWith,
    appendDeadLetter: commits.appendDeadLetter,
    ...createOutboxReads(ctx),

    stats(): OutboxStats {
      const oldest = LANES.map((lane) => state.oldestReceivedAtMs[lane]).filter((ms): ms is number => ms !== undefined);
      return {
        records: { ...state.records },
        bytes: state.bytes.events + state.bytes.telemetry,
        maxBytes: ctx.maxBytes,
        evicted: { ...state.evicted },
        evictedBytes: state.evictedBytes,
        deadLetters: state.deadLetters,
        deadLettersDropped: state.deadLettersDropped,
        commits: state.commits,
        committedRecords: state.committedRecords,
        oldestReceivedAtMs: oldest.length > 0 ? Math.min(...oldest) : undefined,
      };
    },

    setMaxBytes(maxBytes) {
      if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) throw new RangeError(`maxBytes must be a positive integer, got ${maxBytes}`);
      // A lower bound evicts at the next commit, counted and reported like any eviction.
      ctx.maxBytes = maxBytes;
    },

    close() {
      ctx.closing = true;
      closed ??= (async () => {
        // Appends accepted before close still commit; a drain is replaced by the next while work remains.
        for (let draining = commits.draining(); draining !== undefined; draining = commits.draining()) await draining;
        await readDb.close().catch(() => undefined);
        await ctx.withLock(() => db.close()).catch((err: unknown) => {
          throw storageFailed(`closing outbox ${path} failed`, err, { path });
        });
      })();
      return closed;
    },
  };
}
