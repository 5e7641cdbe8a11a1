import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sqlite3 from 'sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode, EpochSchema, isOutpostError } from '@outpost/shared';
import type { Lane } from '@outpost/shared';
import { measureRecordBytes, openOutbox } from '../../../agent/src/buffer/index.js';
import type { EvictionRow, OutboxOptions, OutboxRecordInput, SqliteOutbox } from '../../../agent/src/buffer/index.js';

let dir: string;
let opened: SqliteOutbox[];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'outpost-outbox-'));
  opened = [];
});

afterEach(async () => {
  for (const outbox of opened) await outbox.close();
  await rm(dir, { recursive: true, force: true });
});

function dbPath(name = 'outbox.db'): string {
  return join(dir, 'data', name);
}

async function open(overrides: Partial<OutboxOptions> = {}): Promise<SqliteOutbox> {
  const outbox = await openOutbox({
    path: dbPath(),
    agentId: 'agent-1',
    durability: 'power',
    maxBytes: 10 * 1024 * 1024,
    deadLetterMaxRows: 100,
    maxRecordsPerCommit: 500,
    ...overrides,
  });
  opened.push(outbox);
  return outbox;
}

function record(lane: Lane, i: number, overrides: Partial<OutboxRecordInput> = {}): OutboxRecordInput {
  return {
    lane,
    deviceId: `dev-${i % 3}`,
    ts: 1_700_000_000_000 + i,
    deviceSeq: i,
    kind: lane === 'events' ? 'anomaly' : 'telemetry',
    body: JSON.stringify({ i, metrics: { temp: 20 + (i % 10) } }),
    ...overrides,
  };
}

/** A second, independent connection, for what is stored in the file rather than per connection. */
async function queryFile<T>(path: string, sql: string): Promise<T[]> {
  const db = await new Promise<sqlite3.Database>((resolve, reject) => {
    const conn = new sqlite3.Database(path, sqlite3.OPEN_READONLY, (err) => (err ? reject(err) : resolve(conn)));
  });
  try {
    return await new Promise<T[]>((resolve, reject) => db.all<T>(sql, [], (err, rows) => (err ? reject(err) : resolve(rows))));
  } finally {
    await new Promise<void>((resolve, reject) => db.close((err) => (err ? reject(err) : resolve())));
  }
}

async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isOutpostError(err, code), `expected OutpostError ${code}, got ${String(err)}`).toBe(true);
}

async function readAll(outbox: SqliteOutbox, lane: Lane): Promise<number[]> {
  return (await outbox.read(lane, 0, 1_000_000)).map((r) => r.seq);
}

describe('outbox: opening', () => {
  it('runs WAL with synchronous FULL for power and incremental auto_vacuum, read back from its own connection', async () => {
    const outbox = await open({ durability: 'power' });
    const pragmas = await outbox.pragmas();
    expect(pragmas.journalMode).toBe('wal');
    expect(pragmas.synchronous).toBe(2);
    expect(pragmas.autoVacuum).toBe(2);
    // journal_mode and auto_vacuum live in the file; synchronous is per connection, so only the above can check it.
    expect(await queryFile(dbPath(), 'PRAGMA journal_mode')).toEqual([{ journal_mode: 'wal' }]);
    expect(await queryFile(dbPath(), 'PRAGMA auto_vacuum')).toEqual([{ auto_vacuum: 2 }]);
  });

  it('runs synchronous NORMAL for process durability, also after reopening a power database', async () => {
    const first = await open({ durability: 'power' });
    await first.close();
    const outbox = await open({ durability: 'process' });
    expect((await outbox.pragmas()).synchronous).toBe(1);
    await outbox.close();
    const again = await open({ durability: 'power' });
    expect((await again.pragmas()).synchronous).toBe(2);
  });

  it('mints an epoch once per database file', async () => {
    const first = await open();
    expect(EpochSchema.safeParse(first.epoch).success).toBe(true);
    await first.close();
    const reopened = await open();
    expect(reopened.epoch).toBe(first.epoch);
    const other = await open({ path: dbPath('other.db') });
    expect(EpochSchema.safeParse(other.epoch).success).toBe(true);
    expect(other.epoch).not.toBe(first.epoch);
  });

  it('refuses a database that belongs to another agent', async () => {
    const first = await open({ agentId: 'agent-1' });
    await first.close();
    await expectCode(open({ agentId: 'agent-2' }), ErrorCode.OUTBOX_UNSAFE);
  });

  it('refuses an SQLite file that is not an outbox', async () => {
    const first = await open({ path: dbPath('foreign.db') });
    await first.close();
    const plain = join(dir, 'plain.db');
    await new Promise<void>((resolve, reject) => {
      const db = new sqlite3.Database(plain, (err) => {
        if (err) return reject(err);
        db.exec('CREATE TABLE t (x)', (e) => db.close(() => (e ? reject(e) : resolve())));
      });
    });
    await expectCode(open({ path: plain }), ErrorCode.OUTBOX_UNSAFE);
  });

  it('rejects invalid options with every problem listed', async () => {
    const err = await open({ maxBytes: 0, maxRecordsPerCommit: -1 }).catch((e: unknown) => e);
    expect(isOutpostError(err, ErrorCode.CONFIG_INVALID)).toBe(true);
    expect(String((err as Error).message)).toMatch(/maxBytes[\s\S]*maxRecordsPerCommit/);
  });
});

describe('outbox: appends and seqs', () => {
  it('hands out monotonic seqs per lane that are never reused after delete and reopen', async () => {
    const outbox = await open();
    const seqs = [];
    for (let i = 0; i < 3; i++) seqs.push(await outbox.append(record('telemetry', i)));
    expect(seqs).toEqual([1, 2, 3]);
    expect(await outbox.deleteThrough('telemetry', 3)).toBe(3);
    expect(outbox.stats().records.telemetry).toBe(0);
    expect(outbox.stats().bytes).toBe(0);
    await outbox.close();

    const reopened = await open();
    expect(await reopened.append(record('telemetry', 3))).toBe(4);
    const stored = await reopened.read('telemetry', 0, 10);
    expect(stored).toHaveLength(1);
    expect(stored[0]).toMatchObject({ seq: 4, lane: 'telemetry', deviceId: 'dev-0', deviceSeq: 3, kind: 'telemetry' });
    expect(stored[0]?.bytes).toBe(measureRecordBytes(record('telemetry', 3)));
  });

  it('group-commits 5,000 concurrent appends into far fewer transactions, with consecutive seqs', async () => {
    const outbox = await open({ maxRecordsPerCommit: 500 });
    const count = 5_000;
    const seqs = await Promise.all(Array.from({ length: count }, (_, i) => outbox.append(record('telemetry', i))));
    // Appends resolve in FIFO order with consecutive seqs: 1..5000.
    expect(seqs).toEqual(Array.from({ length: count }, (_, i) => i + 1));
    const stats = outbox.stats();
    expect(stats.committedRecords).toBe(count);
    expect(stats.commits).toBeGreaterThanOrEqual(count / 500);
    expect(stats.commits).toBeLessThanOrEqual(count / 100);
    expect(await readAll(outbox, 'telemetry')).toEqual(seqs);
  });

  it('keeps the events and telemetry lanes independent', async () => {
    const outbox = await open();
    const [e1, t1, e2, t2, t3] = await Promise.all([
      outbox.append(record('events', 0)),
      outbox.append(record('telemetry', 1)),
      outbox.append(record('events', 2)),
      outbox.append(record('telemetry', 3)),
      outbox.append(record('telemetry', 4)),
    ]);
    expect([e1, e2]).toEqual([1, 2]);
    expect([t1, t2, t3]).toEqual([1, 2, 3]);
    expect(await outbox.deleteThrough('events', 2)).toBe(2);
    expect(await readAll(outbox, 'telemetry')).toEqual([1, 2, 3]);
    expect(await readAll(outbox, 'events')).toEqual([]);
    expect(outbox.stats().records).toEqual({ events: 0, telemetry: 3 });
    expect((await outbox.read('telemetry', 1, 1)).map((r) => r.seq)).toEqual([2]);
  });

  it('rejects a record larger than maxBytes with OUTBOX_FULL and keeps going', async () => {
    const outbox = await open({ maxBytes: 64 * 1024 });
    await expectCode(outbox.append(record('telemetry', 0, { body: 'x'.repeat(70 * 1024) })), ErrorCode.OUTBOX_FULL);
    expect(await outbox.append(record('telemetry', 1))).toBe(1);
  });
});

describe('outbox: byte bound', () => {
  it('evicts the oldest telemetry first, counts every record exactly and reports each range', async () => {
    const maxBytes = 20_000;
    const reported: EvictionRow[] = [];
    const outbox = await open({ maxBytes, maxRecordsPerCommit: 50, onEviction: (row) => reported.push(row) });
    const appended: Record<Lane, number[]> = { events: [], telemetry: [] };

    // Events that fit, then telemetry far past the bound: only telemetry may go.
    for (const seq of await Promise.all(Array.from({ length: 20 }, (_, i) => outbox.append(record('events', i))))) appended.events.push(seq);
    for (let round = 0; round < 10; round++) {
      const seqs = await Promise.all(Array.from({ length: 100 }, (_, i) => outbox.append(record('telemetry', round * 100 + i))));
      appended.telemetry.push(...seqs);
      expect(outbox.stats().bytes).toBeLessThanOrEqual(maxBytes);
    }
    let stats = outbox.stats();
    expect(stats.evicted.telemetry).toBeGreaterThan(0);
    expect(stats.evicted.events).toBe(0);
    expect(await readAll(outbox, 'events')).toEqual(appended.events);

    // Now only events arrive: telemetry must be emptied before the first event goes.
    for (let round = 0; round < 5; round++) {
      const seqs = await Promise.all(Array.from({ length: 100 }, (_, i) => outbox.append(record('events', 1_000 + round * 100 + i))));
      appended.events.push(...seqs);
      expect(outbox.stats().bytes).toBeLessThanOrEqual(maxBytes);
    }
    stats = outbox.stats();
    expect(stats.evicted.events).toBeGreaterThan(0);
    expect(await readAll(outbox, 'telemetry')).toEqual([]);

    const evictions = await outbox.evictions();
    expect(reported).toEqual(evictions);
    const firstEventEviction = evictions.findIndex((row) => row.lane === 'events');
    expect(evictions.slice(firstEventEviction).every((row) => row.lane === 'events')).toBe(true);

    let storedBytes = 0;
    for (const lane of ['events', 'telemetry'] as const) {
      const remaining = await outbox.read(lane, 0, 1_000_000);
      storedBytes += remaining.reduce((sum, r) => sum + r.bytes, 0);
      const remainingSeqs = new Set(remaining.map((r) => r.seq));
      const missing = appended[lane].filter((seq) => !remainingSeqs.has(seq));
      // Counters equal what is missing, and the evictions rows cover exactly the missing seqs.
      expect(stats.evicted[lane] + remaining.length).toBe(appended[lane].length);
      expect(stats.evicted[lane]).toBe(missing.length);
      const covered = evictions
        .filter((row) => row.lane === lane)
        .flatMap((row) => {
          expect(row.records).toBe(row.lastSeq - row.firstSeq + 1);
          expect(Object.values(row.byDevice).reduce((a, b) => a + b, 0)).toBe(row.records);
          return Array.from({ length: row.records }, (_, i) => row.firstSeq + i);
        });
      expect(covered).toEqual(missing);
    }
    expect(stats.bytes).toBe(storedBytes);
    expect(stats.evictedBytes).toBe(evictions.reduce((sum, row) => sum + row.bytes, 0));
    // Events were evicted last: every telemetry seq was gone before the first events row.
    expect(
      evictions
        .slice(0, firstEventEviction)
        .filter((row) => row.lane === 'telemetry')
        .reduce((sum, row) => sum + row.records, 0),
    ).toBe(appended.telemetry.length);

    // Totals survive a reopen.
    await outbox.close();
    const reopened = await open({ maxBytes });
    expect(reopened.stats()).toMatchObject({
      records: stats.records,
      bytes: stats.bytes,
      evicted: stats.evicted,
      evictedBytes: stats.evictedBytes,
    });
  });

  it('evicts in chunks of about a tenth of the bound, not per message', async () => {
    const maxBytes = 20_000;
    const outbox = await open({ maxBytes });
    // Sequential appends: every commit past the bound would evict if eviction only made room for one record.
    for (let i = 0; i < 400; i++) await outbox.append(record('telemetry', i));
    const { evictedBytes, evicted, bytes } = outbox.stats();
    const evictions = await outbox.evictions();
    expect(evicted.telemetry).toBeGreaterThan(0);
    expect(bytes).toBeLessThanOrEqual(maxBytes);
    // Each eviction frees more than maxBytes - 90% of maxBytes.
    for (const row of evictions) expect(row.bytes).toBeGreaterThan(maxBytes * 0.1);
    expect(evictions.length).toBeLessThanOrEqual(evictedBytes / (maxBytes * 0.1));
  });
});

describe('outbox: file size', () => {
  it('returns the pages of deleted records to the file system (incremental vacuum)', async () => {
    const outbox = await open();
    const body = JSON.stringify({ pad: 'x'.repeat(2_000) });
    await Promise.all(Array.from({ length: 2_000 }, (_, i) => outbox.append(record('telemetry', i, { body }))));
    const full = await outbox.pragmas();
    expect(full.pageCount).toBeGreaterThan(1_000);
    expect(await outbox.deleteThrough('telemetry', 2_000)).toBe(2_000);
    const after = await outbox.pragmas();
    // sqlite3's run() would step `PRAGMA incremental_vacuum` once and free a single page.
    expect(after.pageCount).toBeLessThan(full.pageCount / 2);
    expect(after.freelistCount).toBeLessThan(256);
  });
});

describe('outbox: dead letters', () => {
  it('keeps the newest deadLetterMaxRows and counts what it drops, across reopen', async () => {
    const outbox = await open({ deadLetterMaxRows: 10 });
    for (let i = 0; i < 5; i++) {
      await outbox.appendDeadLetter({ deviceId: 'dev-0', topic: `devices/dev-0/t${i}`, reason: 'schema', detail: 'bad', payload: Buffer.from([i]) });
    }
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        outbox.appendDeadLetter({ deviceId: null, topic: `t${5 + i}`, reason: 'json', detail: 'not json', payload: Buffer.from([5 + i]) }),
      ),
    );
    const letters = await outbox.deadLetters(100);
    expect(letters.map((d) => d.topic)).toEqual(Array.from({ length: 10 }, (_, i) => `t${24 - i}`));
    expect(letters[0]).toMatchObject({ deviceId: null, reason: 'json', detail: 'not json', payload: Buffer.from([24]) });
    expect(outbox.stats()).toMatchObject({ deadLetters: 10, deadLettersDropped: 15 });
    await outbox.close();
    const reopened = await open({ deadLetterMaxRows: 10 });
    expect(reopened.stats()).toMatchObject({ deadLetters: 10, deadLettersDropped: 15 });
  });
});

describe('outbox: storage failure', () => {
  it('rejects the failing batch with STORAGE_FAILED and accepts again once space is freed', async () => {
    const outbox = await open({ maxFileBytes: 96 * 1024, maxBytes: 10 * 1024 * 1024 });
    const body = JSON.stringify({ pad: 'x'.repeat(1_000) });
    let failure: unknown;
    const committed: number[] = [];
    for (let i = 0; i < 1_000 && failure === undefined; i++) {
      await outbox.append(record('telemetry', i, { body })).then(
        (seq) => committed.push(seq),
        (err: unknown) => (failure = err),
      );
    }
    expect(isOutpostError(failure, ErrorCode.STORAGE_FAILED)).toBe(true);
    expect((failure as Error).cause).toMatchObject({ code: 'SQLITE_FULL' });
    expect(committed.length).toBeGreaterThan(0);
    const before = outbox.stats();
    expect(before.records.telemetry).toBe(committed.length);

    // Concurrent appends into a full file fail together; the outbox stays consistent.
    const results = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => outbox.append(record('telemetry', 2_000 + i, { body }))));
    expect(results.every((r) => r.status === 'rejected')).toBe(true);
    expect(outbox.stats().records.telemetry).toBe(committed.length);

    expect(await outbox.deleteThrough('telemetry', committed.at(-1) ?? 0)).toBe(committed.length);
    const seq = await outbox.append(record('telemetry', 3_000, { body }));
    // Seqs of rolled-back batches were never handed out, so nothing is skipped or reused.
    expect(seq).toBe((committed.at(-1) ?? 0) + 1);
    await outbox.close();

    expect(await queryFile(dbPath(), 'PRAGMA integrity_check')).toEqual([{ integrity_check: 'ok' }]);
    const reopened = await open({ maxFileBytes: 96 * 1024 });
    expect(await readAll(reopened, 'telemetry')).toEqual([seq]);
  });
});

describe('outbox: close', () => {
  it('commits what is queued, is idempotent, and rejects appends afterwards', async () => {
    const outbox = await open();
    const pending = Array.from({ length: 10 }, (_, i) => outbox.append(record('events', i)));
    const closes = [outbox.close(), outbox.close()];
    await Promise.all(closes);
    await outbox.close();
    expect(await Promise.all(pending)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
    await expectCode(outbox.append(record('events', 10)), ErrorCode.OUTBOX_CLOSED);
    await expectCode(outbox.appendDeadLetter({ deviceId: null, topic: 't', reason: 'r', detail: 'd', payload: Buffer.alloc(0) }), ErrorCode.OUTBOX_CLOSED);
    await expectCode(outbox.read('events', 0, 10), ErrorCode.OUTBOX_CLOSED);

    const reopened = await open();
    expect(await readAll(reopened, 'events')).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
    expect(reopened.stats().records.events).toBe(10);
    expect(reopened.stats().bytes).toBe((await reopened.read('events', 0, 100)).reduce((sum, r) => sum + r.bytes, 0));
    expect(reopened.stats().oldestReceivedAtMs).toBeTypeOf('number');
  });
});
