/**
 * The outbox's schema and the checks made when it is opened: tables, numbered migrations,
 * pragmas read back, ownership. Everything here runs once per open, before the first commit.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { ErrorCode, Lane, OutpostError, RecordKind } from '@outpost/shared';
import type { Logger } from '@outpost/shared';
import { openDatabase, type Database } from './sqlite.js';
import type { OutboxOptions } from './outbox-types.js';

/** Timeout for a lock held by another connection (an operator's sqlite3 shell), ms. */
export const DEFAULT_BUSY_TIMEOUT_MS = 5_000;
/** The WAL file is truncated back to this size after a checkpoint, bytes. */
export const DEFAULT_JOURNAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024;
/**
 * Device messages remembered per device to recognise a resend (DESIGN section 2): the last
 * this many device seqs, one slot each (`device_seq % RESEND_WINDOW_SEQS`). A device resends
 * only what was in flight when its connection dropped, far fewer than this.
 */
export const RESEND_WINDOW_SEQS = 256;

/** Table of each lane. Lanes are interpolated into SQL, so only these names ever reach it. */
export const LANE_TABLE: Readonly<Record<Lane, string>> = { events: 'events', telemetry: 'telemetry' };
export const LANES: readonly Lane[] = [Lane.events, Lane.telemetry];

export const COUNTER = {
  evictedEvents: 'evicted_events',
  evictedTelemetry: 'evicted_telemetry',
  evictedBytes: 'evicted_bytes',
  deadLettersDropped: 'dead_letters_dropped',
} as const;
export const EVICTED_COUNTER: Readonly<Record<Lane, string>> = { events: COUNTER.evictedEvents, telemetry: COUNTER.evictedTelemetry };

export interface Meta {
  agentId: string;
  epoch: string;
  createdAtMs: number;
}

/** Version 1: lanes, dead letters, evictions, counters. */
const SCHEMA_V1 = `
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
`;

/**
 * Version 2: the resend window (the last RESEND_WINDOW_SEQS device messages per device, kept
 * by a trigger in the very statement that inserts the telemetry, so a record and its window
 * entry commit together or not at all), and why a range was dropped: `full` (the byte bound)
 * or `corrupt` (a row the uplink found unreadable), with the device seqs it held.
 */
const MIGRATE_TO_V2 = `
CREATE TABLE device_window (
  device_id TEXT NOT NULL,
  slot INTEGER NOT NULL,
  device_seq INTEGER NOT NULL,
  ts INTEGER NOT NULL,
  at_ms INTEGER NOT NULL,
  PRIMARY KEY (device_id, slot)
) WITHOUT ROWID;
CREATE TRIGGER telemetry_device_window AFTER INSERT ON telemetry
  WHEN NEW.kind = '${RecordKind.telemetry}' AND NEW.device_seq IS NOT NULL
BEGIN
  INSERT OR REPLACE INTO device_window (device_id, slot, device_seq, ts, at_ms)
  VALUES (NEW.device_id, NEW.device_seq % ${RESEND_WINDOW_SEQS}, NEW.device_seq, NEW.ts, NEW.received_at_ms);
END;
INSERT OR REPLACE INTO device_window (device_id, slot, device_seq, ts, at_ms)
  SELECT device_id, device_seq % ${RESEND_WINDOW_SEQS}, device_seq, ts, received_at_ms FROM telemetry
  WHERE kind = '${RecordKind.telemetry}' AND device_seq IS NOT NULL ORDER BY seq;
ALTER TABLE evictions ADD COLUMN reason TEXT NOT NULL DEFAULT 'full';
ALTER TABLE evictions ADD COLUMN device_seqs TEXT NOT NULL DEFAULT '[]';
`;

/**
 * Numbered migrations: OUTBOX_MIGRATIONS[n - 1] takes a database from version n - 1 to n, and
 * `PRAGMA user_version` (in the file's header, so it commits with the pages it describes)
 * records the version reached. A shipped migration is never edited, only a new one appended:
 * an outbox an older agent wrote is exactly what these texts made (the upgrade tests build one
 * by running them).
 */
export const OUTBOX_MIGRATIONS: readonly string[] = [SCHEMA_V1, MIGRATE_TO_V2];
/** The outbox schema version this agent writes. */
export const SCHEMA_VERSION = OUTBOX_MIGRATIONS.length;

/** One numbered migration: the database goes from version `from` to `to` (= from + 1). */
export interface MigrationStep {
  readonly path: string;
  readonly from: number;
  readonly to: number;
}

export interface MigrateOptions {
  /** The migrations to apply, default OUTBOX_MIGRATIONS: a test passes a longer list to try a future version. */
  migrations?: readonly string[];
  /**
   * Called inside each migration's transaction once its statements ran, before its version
   * bump commits: where a test kills the process to prove an interrupted migration resumes.
   */
  beforeCommit?: (step: MigrationStep) => Promise<void>;
}

/**
 * True for an empty file; refuses a database that has tables but is not an outbox, and an
 * outbox of a newer schema than SCHEMA_VERSION. Call it before `db` runs any statement: it
 * reads on a read-only connection of its own, because the last read-write connection to
 * close checkpoints the WAL into the main file, and a refused file must stay untouched.
 *
 * @throws OutpostError OUTBOX_UNSAFE (details: path, schemaVersion, agentSchemaVersion for a
 *   newer schema; path, tables for a database that is not an outbox).
 */
export async function checkIsNewDatabase(db: Database): Promise<boolean> {
  const reader = await openDatabase(db.path, { readOnly: true });
  let tables: string[];
  let version: number;
  try {
    tables = (await reader.all<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'")).map((row) => row.name);
    version = (await reader.get<{ user_version: number }>('PRAGMA user_version'))?.user_version ?? 0;
  } finally {
    await reader.close().catch(() => undefined);
  }
  if (tables.length === 0) return true;
  if (!tables.includes('meta')) {
    throw new OutpostError(ErrorCode.OUTBOX_UNSAFE, `${db.path} is an SQLite database but not an Outpost outbox (no meta table)`, {
      details: { path: db.path, tables },
    });
  }
  assertNotNewer(db.path, version, SCHEMA_VERSION);
  return false;
}

/** An older agent never writes a newer outbox: its statements could corrupt what the newer one keeps there. */
function assertNotNewer(path: string, schemaVersion: number, agentSchemaVersion: number): void {
  if (schemaVersion <= agentSchemaVersion) return;
  throw new OutpostError(
    ErrorCode.OUTBOX_UNSAFE,
    `${path}: outbox schema ${schemaVersion} is newer than this agent's ${agentSchemaVersion}: upgrade the agent (or move the file away to start an empty outbox); the file is untouched`,
    { details: { path, schemaVersion, agentSchemaVersion } },
  );
}

export async function assertWal(db: Database): Promise<void> {
  const row = await db.get<{ journal_mode: string }>('PRAGMA journal_mode = WAL');
  // WAL is refused e.g. on file systems without shared memory; rollback journals would change the durability story.
  if (row?.journal_mode !== 'wal') {
    throw new OutpostError(ErrorCode.OUTBOX_UNSAFE, `${db.path}: journal_mode is '${row?.journal_mode}', not 'wal'`, {
      details: { path: db.path, journalMode: row?.journal_mode },
    });
  }
}

export async function assertSynchronous(db: Database, durability: OutboxOptions['durability']): Promise<void> {
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

export async function setMaxFileBytes(db: Database, maxFileBytes: number, logger: Logger | undefined): Promise<void> {
  const pageSize = (await db.get<{ page_size: number }>('PRAGMA page_size'))?.page_size ?? 4096;
  const wanted = Math.max(1, Math.floor(maxFileBytes / pageSize));
  const row = await db.get<{ max_page_count: number }>(`PRAGMA max_page_count = ${wanted}`);
  // SQLite never sets the cap below the current page count: a file already larger keeps its size as the cap.
  if (row !== undefined && row.max_page_count !== wanted) {
    logger?.warn({ path: db.path, maxFileBytes, capBytes: row.max_page_count * pageSize }, 'outbox file is already larger than maxFileBytes');
  }
}

/**
 * Brings the schema to the last version: a new database gets every migration and its epoch in
 * one transaction (a crash leaves no half-made outbox); an older one the migrations it lacks,
 * each in a transaction of its own with its version bump, so a migration killed midway leaves
 * the version before it (the file as it was, the WAL's uncommitted frames ignored) and runs
 * again at the next open, while the ones before it stay done. The version is read again inside
 * each transaction (BEGIN IMMEDIATE holds the write lock), so a second process opening the
 * same file never runs a step twice.
 *
 * @throws OutpostError OUTBOX_UNSAFE for a database of a newer version (written by a newer
 *   agent) or without a version.
 */
export async function migrate(db: Database, agentId: string, isNew: boolean, logger: Logger | undefined, options: MigrateOptions = {}): Promise<void> {
  const migrations = options.migrations ?? OUTBOX_MIGRATIONS;
  const last = migrations.length;
  if (isNew) {
    await inTransaction(db, async () => {
      for (const sql of migrations) await db.exec(sql);
      await db.run('INSERT INTO meta (id, agent_id, epoch, created_at_ms) VALUES (1, ?, ?, ?)', [agentId, mintEpoch(), Date.now()]);
      await db.exec(`PRAGMA user_version = ${last}`);
    });
    return;
  }
  for (;;) {
    const startedAtMs = performance.now();
    const step = await inTransaction(db, async (): Promise<MigrationStep | undefined> => {
      const from = (await db.get<{ user_version: number }>('PRAGMA user_version'))?.user_version ?? 0;
      assertNotNewer(db.path, from, last);
      if (from === last) return undefined;
      if (from < 1) throw new OutpostError(ErrorCode.OUTBOX_UNSAFE, `${db.path}: outbox has no schema version`, { details: { path: db.path } });
      const to = from + 1;
      await db.exec(migrations[from]!);
      await options.beforeCommit?.({ path: db.path, from, to });
      await db.exec(`PRAGMA user_version = ${to}`);
      return { path: db.path, from, to };
    });
    if (step === undefined) return;
    logger?.info({ path: step.path, from: step.from, to: step.to, durationMs: Math.round(performance.now() - startedAtMs) }, 'outbox schema migrated');
  }
}

/** Runs `fn` between BEGIN IMMEDIATE and COMMIT; any failure rolls back and rethrows. */
async function inTransaction<T>(db: Database, fn: () => Promise<T>): Promise<T> {
  await db.run('BEGIN IMMEDIATE');
  try {
    const result = await fn();
    await db.run('COMMIT');
    return result;
  } catch (err) {
    await rollbackQuietly(db);
    throw err;
  }
}

/** Base36 creation time plus 64 random bits: unique per database, matches EpochSchema (^[0-9a-z]{8,40}$). */
function mintEpoch(): string {
  return Date.now().toString(36) + randomBytes(8).readBigUInt64BE().toString(36).padStart(13, '0');
}

export async function readMeta(db: Database, path: string): Promise<Meta> {
  const row = await db.get<{ agent_id: string; epoch: string; created_at_ms: number }>('SELECT agent_id, epoch, created_at_ms FROM meta WHERE id = 1');
  if (row === undefined) throw new OutpostError(ErrorCode.OUTBOX_UNSAFE, `${path}: outbox meta row is missing`, { details: { path } });
  return { agentId: row.agent_id, epoch: row.epoch, createdAtMs: row.created_at_ms };
}

export function assertOwnedBy(meta: Meta, agentId: string, path: string): void {
  if (meta.agentId === agentId) return;
  // Writing another agent's outbox would publish its seqs under our id: refuse, never adopt.
  throw new OutpostError(
    ErrorCode.OUTBOX_UNSAFE,
    `${path} belongs to agent '${meta.agentId}', not '${agentId}'; give each agent its own dataDir, or remove the file to re-provision`,
    { details: { path, agentId, ownerAgentId: meta.agentId, epoch: meta.epoch } },
  );
}

export async function warnWithoutIncrementalVacuum(db: Database, path: string, logger: Logger | undefined): Promise<void> {
  const mode = (await db.get<{ auto_vacuum: number }>('PRAGMA auto_vacuum'))?.auto_vacuum;
  // auto_vacuum can only change by a full VACUUM; a file made elsewhere keeps working, it just never shrinks.
  if (mode !== 2) logger?.warn({ path, autoVacuum: mode }, 'outbox database is not in incremental auto_vacuum mode; freed pages are reused but the file will not shrink');
}

export async function rollbackQuietly(db: Database): Promise<void> {
  // "cannot rollback - no transaction is active" after SQLite rolled back by itself is expected.
  await db.run('ROLLBACK').catch(() => undefined);
}
