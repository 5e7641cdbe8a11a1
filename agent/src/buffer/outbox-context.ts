/**
 * What every part of the outbox shares: its one connection, its options, the in-memory
 * counters, and the FIFO lock every use of the connection goes through. sqlite3 does not
 * isolate statements of one connection, so a read issued while a batch transaction is open
 * would see rows that may still be rolled back; the lock keeps them apart.
 */
import { ErrorCode, OutpostError, isOutpostError, type Lane } from '@outpost/shared';
import { LANE_TABLE } from './outbox-schema.js';
import type { Database } from './sqlite.js';
import type { EvictionRow, OutboxOptions } from './outbox-types.js';

/** What the in-memory counters hold; loaded at open, changed only after a COMMIT. */
export interface State {
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

export interface OutboxContext {
  readonly db: Database;
  /**
   * A second, read-only connection for the uplink's reads: they see only committed rows (WAL
   * gives each connection its own snapshot), so they need not wait for the lock behind ingest's
   * commits, and SQLite works on them in another thread while a commit runs.
   */
  readonly readDb: Database;
  /** A frozen copy taken at open: a caller changing its object later changes nothing. */
  readonly options: Readonly<OutboxOptions>;
  readonly state: State;
  /** The byte bound now: `options.maxBytes` at open, changed by `setMaxBytes` (a config change). */
  maxBytes: number;
  /** Set by close(): appends, reads and deletes are refused from then on. */
  closing: boolean;
  /** Runs `fn` alone on the connection, in call order. */
  withLock<T>(fn: () => Promise<T>): Promise<T>;
}

export function createOutboxContext(db: Database, readDb: Database, options: OutboxOptions, state: State): OutboxContext {
  let lockTail: Promise<void> = Promise.resolve();
  return {
    db,
    readDb,
    options: Object.freeze({ ...options }),
    state,
    maxBytes: options.maxBytes,
    closing: false,
    withLock<T>(fn: () => Promise<T>): Promise<T> {
      const result = lockTail.then(fn);
      lockTail = result.then(
        () => undefined,
        () => undefined,
      );
      return result;
    },
  };
}

/** Reads on the read-only connection: no lock (see OutboxContext.readDb), the same errors as useDb. */
export async function useReader<T>(ctx: OutboxContext, what: string, fn: () => Promise<T>): Promise<T> {
  const { path } = ctx.options;
  if (ctx.closing) throw closedError(path);
  try {
    return await fn();
  } catch (err) {
    if (isOutpostError(err)) throw err;
    throw storageFailed(`outbox ${what} failed`, err, { path });
  }
}

/** Reads and deletes share the lock with commits, so they only ever see committed rows. */
export function useDb<T>(ctx: OutboxContext, what: string, fn: () => Promise<T>): Promise<T> {
  const { path } = ctx.options;
  if (ctx.closing) return Promise.reject(closedError(path));
  return ctx.withLock(async () => {
    try {
      return await fn();
    } catch (err) {
      if (isOutpostError(err)) throw err;
      throw storageFailed(`outbox ${what} failed`, err, { path });
    }
  });
}

export function closedError(path: string): OutpostError {
  return new OutpostError(ErrorCode.OUTBOX_CLOSED, `outbox ${path} is closed`, { details: { path } });
}

export function storageFailed(message: string, cause: unknown, details: Record<string, unknown>): OutpostError {
  return new OutpostError(ErrorCode.STORAGE_FAILED, message, { cause, details });
}

/** The table of `lane`; throws for anything else, since lanes are interpolated into SQL. */
export function laneTable(lane: Lane): string {
  if (!Object.hasOwn(LANE_TABLE, lane)) throw new TypeError(`unknown outbox lane ${JSON.stringify(lane)}`);
  return LANE_TABLE[lane];
}

export async function readOldestReceivedAtMs(db: Database, lane: Lane): Promise<number | undefined> {
  return (await db.get<{ received_at_ms: number }>(`SELECT received_at_ms FROM ${LANE_TABLE[lane]} ORDER BY seq LIMIT 1`))?.received_at_ms;
}

/** Inside a transaction: moves one of the persisted counters (table `counters`). */
export async function addToCounter(db: Database, name: string, delta: number): Promise<void> {
  await db.run('UPDATE counters SET value = value + ? WHERE name = ?', [delta, name]);
}

/** Tells `onEviction` about a committed eviction; a callback that throws is logged, never rethrown. */
export function notifyEviction(options: Readonly<OutboxOptions>, eviction: EvictionRow): void {
  try {
    options.onEviction?.(eviction);
  } catch (err) {
    options.logger?.error({ err, eviction }, 'onEviction callback threw');
  }
}
