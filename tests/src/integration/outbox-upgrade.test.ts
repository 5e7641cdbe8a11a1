import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { ErrorCode, isOutpostError, Lane, RecordKind, UPLINK_STREAM, UPLINK_SUBJECTS, type OutpostError } from '@outpost/shared';
import { OUTBOX_FILE_NAME } from '@outpost/agent';
import { measureRecordBytes, openOutbox, RESEND_WINDOW_SEQS, SCHEMA_VERSION, type SqliteOutbox } from '../../../agent/src/buffer/index.js';
import { migrate, OUTBOX_MIGRATIONS } from '../../../agent/src/buffer/outbox-schema.js';
import { openDatabase, type Database } from '../../../agent/src/buffer/sqlite.js';
import { startAgentProcess, testAgentConfig, type AgentProcess } from '../harness/agent-process.js';
import { connectDevice, publish } from '../harness/devices.js';
import { fetchMetrics, metricValue } from '../harness/metrics.js';
import { startNatsServer, type NatsServer } from '../harness/nats-server.js';
import { createTempDir, type TempDir } from '../harness/temp-dir.js';
import { readUplinkStream } from '../harness/uplink-stream.js';
import { spawnOwned, waitFor, type OwnedProcess } from '../harness/wait.js';

// Upgrades of the outbox (issue [install], item 5): an outbox written by the previous schema
// version (v1, made here by running its own migration text, exactly what a v1 agent ran) is
// opened by this agent, migrated and drained without losing a record; a migration killed with
// SIGKILL midway leaves v1 and runs again at the next open; an agent refuses an outbox of a
// newer schema without changing a byte of it. Real SQLite files, real processes.

const CHILD = fileURLToPath(new URL('./fixtures/outbox-migrate-child.mjs', import.meta.url));
const AGENT_ID = 'upgrade-agent';
const EPOCH = 'v1epoch0000000000000';
const TS0 = 1_767_225_600_000;
const RECEIVED_AT_MS = TS0 + 60_000;

let dir: TempDir;
const cleanups: Array<() => Promise<unknown>> = [];

beforeEach(async () => {
  dir = await createTempDir('outpost-upgrade-');
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  await dir.remove();
});

interface V1Contents {
  /** Telemetry records: `devices` devices, each with device seqs 1..telemetry/devices. */
  telemetry: number;
  devices: number;
  /** Anomaly records in the events lane. */
  events: number;
}

/** The body of telemetry record `i` (0-based) and its device: what the v1 agent stored and what must arrive. */
function telemetryRow(i: number, devices: number): { deviceId: string; deviceSeq: number; ts: number; body: string } {
  const deviceId = `dev-${i % devices}`;
  const deviceSeq = Math.floor(i / devices) + 1;
  const ts = TS0 + deviceSeq * 1_000;
  return { deviceId, deviceSeq, ts, body: JSON.stringify({ ts, seq: deviceSeq, metrics: { temperature: 20 + (i % 97) / 10, humidity: 40 + (i % 13) } }) };
}

function anomalyBody(i: number): string {
  return JSON.stringify({ ts: TS0 + i, model: { name: 'anomaly-pca', version: '1.0.0' }, score: 3 + i / 1_000, anomaly: true });
}

/**
 * Writes the outbox a v1 agent leaves behind: the file settings its open made (incremental
 * auto_vacuum, WAL), the v1 migration with its meta row and `user_version = 1` in one
 * transaction, then the buffered records in commits of 10,000 (a v1 agent committed in
 * smaller groups; the rows are the same).
 */
async function writeV1Outbox(path: string, contents: V1Contents): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const db = await openDatabase(path);
  try {
    await db.exec('PRAGMA auto_vacuum = INCREMENTAL; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL');
    await db.exec('BEGIN IMMEDIATE');
    await db.exec(OUTBOX_MIGRATIONS[0]!);
    await db.run('INSERT INTO meta (id, agent_id, epoch, created_at_ms) VALUES (1, ?, ?, ?)', [AGENT_ID, EPOCH, TS0]);
    await db.exec('PRAGMA user_version = 1; COMMIT');
    const rows: unknown[][] = [];
    for (let i = 0; i < contents.telemetry; i++) {
      const { deviceId, deviceSeq, ts, body } = telemetryRow(i, contents.devices);
      rows.push([deviceId, ts, deviceSeq, RecordKind.telemetry, body, measureRecordBytes({ deviceId, kind: RecordKind.telemetry, body })]);
    }
    await insertRows(db, 'telemetry', rows);
    const events: unknown[][] = [];
    for (let i = 0; i < contents.events; i++) {
      const body = anomalyBody(i);
      events.push([`dev-${i % contents.devices}`, TS0 + i, null, RecordKind.anomaly, body, measureRecordBytes({ deviceId: `dev-${i % contents.devices}`, kind: RecordKind.anomaly, body })]);
    }
    await insertRows(db, 'events', events);
  } finally {
    await db.close();
  }
}

async function insertRows(db: Database, table: 'telemetry' | 'events', rows: unknown[][]): Promise<void> {
  for (let start = 0; start < rows.length; start += 10_000) {
    await db.run(
      `INSERT INTO ${table} (device_id, ts, device_seq, kind, body, received_at_ms, bytes)
         SELECT value->>0, value->>1, value->>2, value->>3, value->>4, ?1, value->>5 FROM json_each(?2) ORDER BY key`,
      [RECEIVED_AT_MS, JSON.stringify(rows.slice(start, start + 10_000))],
    );
  }
}

/**
 * The uplink stream the agent publishes into, as the control plane declares it at start (its
 * name and subjects from the shared contract; the server's default duplicate window). Made
 * here rather than by a control plane: this test's one real dependency is nats-server.
 */
async function createUplinkStream(nats: NatsServer): Promise<void> {
  const nc = await connect(nats.clientOptions());
  try {
    await (await jetstreamManager(nc)).streams.add({ name: UPLINK_STREAM, subjects: [UPLINK_SUBJECTS] });
  } finally {
    await nc.close();
  }
}

/** What the file says, read on a connection of its own. */
async function inspect(path: string): Promise<{ version: number; tables: string[]; telemetry: number; events: number }> {
  const db = await openDatabase(path, { readOnly: true });
  try {
    const version = (await db.get<{ user_version: number }>('PRAGMA user_version'))?.user_version ?? -1;
    const tables = (await db.all<{ name: string }>("SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger') ORDER BY name")).map((r) => r.name);
    const count = async (table: string): Promise<number> => (await db.get<{ n: number }>(`SELECT COUNT(*) AS n FROM ${table}`))?.n ?? -1;
    return { version, tables, telemetry: await count('telemetry'), events: await count('events') };
  } finally {
    await db.close();
  }
}

async function open(path: string): Promise<SqliteOutbox> {
  const outbox = await openOutbox({ path, agentId: AGENT_ID, durability: 'power', maxBytes: 256 * 1024 * 1024, deadLetterMaxRows: 100, maxRecordsPerCommit: 500 });
  cleanups.push(() => outbox.close());
  return outbox;
}

/** Runs the fixture child and resolves with it once it printed `event`. */
async function startChild(args: string[], event: string): Promise<{ owned: OwnedProcess; line: Record<string, unknown> }> {
  const owned = await spawnOwned(process.execPath, [CHILD, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  cleanups.push(() => owned.kill());
  let stderr = '';
  owned.child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const line = await new Promise<Record<string, unknown>>((resolve, reject) => {
    createInterface({ input: owned.child.stdout! }).on('line', (text) => {
      const entry = JSON.parse(text) as Record<string, unknown>;
      if (entry['event'] === event) resolve(entry);
    });
    void owned.closed.then(() => reject(new Error(`child exited before '${event}'; stderr: ${stderr}`)));
  });
  return { owned, line };
}

/** The main file and its WAL, byte for byte, and the directory's file names. */
function fingerprint(path: string): { main: string; wal: string; files: string[] } {
  const hash = (file: string): string => (existsSync(file) ? createHash('sha256').update(readFileSync(file)).digest('hex') : 'absent');
  // The -shm index is shared memory, rebuilt from the WAL by any reader: not part of the data.
  return { main: hash(path), wal: hash(`${path}-wal`), files: readdirSync(dirname(path)).filter((f) => !f.endsWith('-shm')).sort() };
}

function walBytes(path: string): number {
  return existsSync(`${path}-wal`) ? readFileSync(`${path}-wal`).length : 0;
}

describe('outbox upgrade: the previous schema version', () => {
  it('an outbox of 100,000 records written by schema v1 is migrated by a real agent and drained to nats-server with 0 lost', async () => {
    const contents: V1Contents = { telemetry: 99_000, devices: 1_000, events: 1_000 };
    const dataDir = join(dir.path, 'data');
    const path = join(dataDir, OUTBOX_FILE_NAME);
    await writeV1Outbox(path, contents);
    expect(await inspect(path)).toMatchObject({ version: 1, telemetry: contents.telemetry, events: contents.events });

    const nats: NatsServer = await startNatsServer();
    cleanups.push(() => nats.stop());
    await createUplinkStream(nats);
    const startedAtMs = performance.now();
    const agent: AgentProcess = await startAgentProcess(
      testAgentConfig(dataDir, { agentId: AGENT_ID, uplink: { servers: [nats.url] }, log: { level: 'info' }, outbox: { maxBytes: 256 * 1024 * 1024 } }),
      { timeoutMs: 120_000 },
    );
    cleanups.push(() => agent.kill9());
    const readyAtMs = performance.now();
    expect(agent.epoch, 'the epoch minted by the v1 agent is kept').toBe(EPOCH);
    const migrated = agent.logs.filter((l) => l['msg'] === 'outbox schema migrated');
    expect(migrated.map((l) => [l['from'], l['to']])).toEqual([[1, SCHEMA_VERSION]]);

    const outboxRecords = async (): Promise<number> => {
      const text = await fetchMetrics(agent.httpPort);
      return (metricValue(text, 'outpost_outbox_records', { lane: 'telemetry' }) ?? -1) + (metricValue(text, 'outpost_outbox_records', { lane: 'events' }) ?? -1);
    };
    await waitFor(async () => (await outboxRecords()) === 0, { what: 'the agent to drain its migrated outbox', timeoutMs: 240_000, intervalMs: 100 });
    const drainedAtMs = performance.now();

    // The v2 resend window was filled from the v1 rows: a device resending the last message
    // the v1 agent stored is recognised as a resend (acknowledged, reported, not stored again).
    const lastOfDev0 = telemetryRow(contents.telemetry - contents.devices, contents.devices);
    const device = await connectDevice(`mqtt://127.0.0.1:${agent.mqttPort}`, { clientId: lastOfDev0.deviceId });
    cleanups.push(async () => void device.end(true));
    await publish(device, `devices/${lastOfDev0.deviceId}/telemetry`, lastOfDev0.body);
    await waitFor(async () => (await outboxRecords()) === 0, { what: 'the resend report to drain', timeoutMs: 60_000 });
    expect(await agent.stop()).toBe(0);

    const stream = await readUplinkStream(nats);
    const byLane = { telemetry: new Map<number, (typeof stream)[number]>(), events: new Map<number, (typeof stream)[number]>() };
    let duplicates = 0;
    for (const r of stream) {
      expect([r.agentId, r.epoch]).toEqual([AGENT_ID, EPOCH]);
      const lane = byLane[r.lane as Lane];
      if (lane.has(r.seq)) duplicates += 1;
      lane.set(r.seq, r);
    }
    // 0 lost: every seq of each lane arrived, with the body, device and seq the v1 agent stored.
    let lost = 0;
    for (let i = 0; i < contents.telemetry; i++) {
      const want = telemetryRow(i, contents.devices);
      const got = byLane.telemetry.get(i + 1);
      if (got === undefined || got.deviceId !== want.deviceId || got.deviceSeq !== want.deviceSeq || got.kind !== RecordKind.telemetry || JSON.stringify(got.body) !== want.body) lost += 1;
    }
    for (let i = 0; i < contents.events; i++) {
      const got = byLane.events.get(i + 1);
      if (got === undefined || got.kind !== RecordKind.anomaly || JSON.stringify(got.body) !== anomalyBody(i)) lost += 1;
    }
    expect(lost).toBe(0);
    expect(byLane.telemetry.size).toBe(contents.telemetry);
    // The events lane: the 1,000 anomalies, then the resend report written by the v2 agent.
    expect(byLane.events.size).toBe(contents.events + 1);
    expect(byLane.events.get(contents.events + 1)).toMatchObject({ kind: RecordKind.deviceResend, deviceId: lastOfDev0.deviceId, deviceSeq: lastOfDev0.deviceSeq });
    expect(await inspect(path)).toMatchObject({ version: SCHEMA_VERSION, telemetry: 0, events: 0 });

    console.log(
      `outbox upgrade: ${contents.telemetry + contents.events} v1 records; migration ${String(migrated[0]?.['durationMs'])} ms, agent start (migration included) ${Math.round(readyAtMs - startedAtMs)} ms, ` +
        `drain ${Math.round(drainedAtMs - readyAtMs)} ms; in the stream ${byLane.telemetry.size} telemetry + ${byLane.events.size} events distinct, ${duplicates} duplicate deliveries, ${lost} lost`,
    );
  }, 600_000);

  it('keeps what a v1 agent stored besides the records: meta, counters, evictions (reason full), dead letters, and fills the resend window', async () => {
    const path = join(dir.path, 'data', OUTBOX_FILE_NAME);
    const devices = 3;
    const perDevice = RESEND_WINDOW_SEQS + 44;
    await writeV1Outbox(path, { telemetry: devices * perDevice, devices, events: 2 });
    const db = await openDatabase(path);
    await db.exec(
      "UPDATE counters SET value = 7 WHERE name = 'evicted_telemetry'; UPDATE counters SET value = 700 WHERE name = 'evicted_bytes';" +
        "INSERT INTO evictions (lane, first_seq, last_seq, records, bytes, by_device, at_ms) VALUES ('telemetry', 1, 7, 7, 700, '{\"dev-0\":7}', 1);" +
        "INSERT INTO dead_letters (device_id, topic, reason, detail, payload, at_ms) VALUES ('dev-1', 'devices/dev-1/telemetry', 'json', 'not JSON', x'7b7b', 2);",
    );
    await db.close();

    const outbox = await open(path);
    expect([outbox.agentId, outbox.epoch]).toEqual([AGENT_ID, EPOCH]);
    const stats = outbox.stats();
    expect(stats.records).toEqual({ telemetry: devices * perDevice, events: 2 });
    expect(stats.evicted.telemetry).toBe(7);
    expect(stats.evictedBytes).toBe(700);
    expect(await outbox.evictions()).toEqual([expect.objectContaining({ lane: 'telemetry', firstSeq: 1, lastSeq: 7, records: 7, reason: 'full', byDevice: { 'dev-0': 7 }, deviceSeqs: [] })]);
    expect((await outbox.deadLetters(10)).map((d) => [d.deviceId, d.reason, d.payload.toString()])).toEqual([['dev-1', 'json', '{{']]);
    const read = await outbox.read(Lane.telemetry, 0, 1_000_000);
    expect(read.map((r) => r.body)).toEqual(Array.from({ length: devices * perDevice }, (_, i) => telemetryRow(i, devices).body));
    // The window holds each device's last RESEND_WINDOW_SEQS seqs, as if v2 had stored them.
    const window = await outbox.deviceWindow();
    for (let d = 0; d < devices; d++) {
      const seqs = window.filter((w) => w.deviceId === `dev-${d}`).map((w) => w.deviceSeq).sort((a, b) => a - b);
      expect(seqs).toEqual(Array.from({ length: RESEND_WINDOW_SEQS }, (_, k) => perDevice - RESEND_WINDOW_SEQS + 1 + k));
    }
    // And the v2 agent keeps writing on: new seqs follow the v1 ones.
    const seq = await outbox.append({ lane: Lane.telemetry, deviceId: 'dev-0', ts: TS0, deviceSeq: perDevice + 1, kind: RecordKind.telemetry, body: '{"ts":1,"metrics":{}}' });
    expect(seq).toBe(devices * perDevice + 1);
  });
});

describe('outbox upgrade: a migration killed midway', () => {
  it('SIGKILL inside the v1 -> v2 migration of 100,000 records leaves v1, and the next open migrates with every record', async () => {
    const path = join(dir.path, 'data', OUTBOX_FILE_NAME);
    const contents: V1Contents = { telemetry: 100_000, devices: 1_000, events: 0 };
    await writeV1Outbox(path, contents);
    const walBefore = walBytes(path);

    const { owned, line } = await startChild(['migrate-and-hang', path, AGENT_ID], 'migration-before-commit');
    expect(line).toMatchObject({ from: 1, to: 2 });
    // The migration's statements have run: whatever of its 100,000 window rows did not fit
    // SQLite's page cache went to the WAL, uncommitted.
    const walAtKill = walBytes(path);
    await owned.kill();
    expect(owned.child.signalCode).toBe('SIGKILL');

    const after = await inspect(path);
    expect(after.version).toBe(1);
    expect(after.tables).not.toContain('device_window');
    expect(after.telemetry).toBe(contents.telemetry);

    const outbox = await open(path);
    expect((await inspect(path)).version).toBe(SCHEMA_VERSION);
    expect(outbox.stats().records.telemetry).toBe(contents.telemetry);
    const read = await outbox.read(Lane.telemetry, 0, 1_000_000);
    expect(read.length).toBe(contents.telemetry);
    expect(read.every((r, i) => r.seq === i + 1 && r.body === telemetryRow(i, contents.devices).body)).toBe(true);
    expect((await outbox.deviceWindow()).length).toBe(contents.telemetry);
    console.log(`outbox upgrade: killed inside the migration with the WAL at ${walAtKill} bytes (${walBefore} before it started); reopened at v${SCHEMA_VERSION} with ${read.length} records`);
  }, 300_000);

  it('each migration commits with its own version bump: a failure in a later one keeps the earlier ones done, and the next run finishes', async () => {
    const path = join(dir.path, 'data', OUTBOX_FILE_NAME);
    await writeV1Outbox(path, { telemetry: 10, devices: 2, events: 0 });
    const future = [...OUTBOX_MIGRATIONS, 'CREATE TABLE future_v3 (x INTEGER); INSERT INTO future_v3 VALUES (3);'];
    const db = await openDatabase(path);
    cleanups.push(() => db.close());
    const steps: number[] = [];
    const failure = await migrate(db, AGENT_ID, false, undefined, {
      migrations: future,
      beforeCommit: async ({ to }) => {
        steps.push(to);
        if (to === 3) throw new Error('interrupted in v3');
      },
    }).catch((e: unknown) => e);
    expect(String(failure)).toContain('interrupted in v3');
    expect(steps).toEqual([2, 3]);
    expect(await inspect(path)).toMatchObject({ version: 2 });
    expect((await inspect(path)).tables).not.toContain('future_v3');

    await migrate(db, AGENT_ID, false, undefined, { migrations: future, beforeCommit: async ({ to }) => void steps.push(to) });
    expect(steps).toEqual([2, 3, 3]);
    expect(await inspect(path)).toMatchObject({ version: 3, telemetry: 10 });
    expect((await inspect(path)).tables).toContain('future_v3');
  });
});

describe('outbox upgrade: an older agent and a newer outbox', () => {
  /** An outbox this agent wrote, then opened by a newer agent that bumped the schema and crashed (a hot WAL). */
  async function writeNewerOutbox(path: string): Promise<number> {
    const outbox = await openOutbox({ path, agentId: AGENT_ID, durability: 'power', maxBytes: 1024 * 1024, deadLetterMaxRows: 10, maxRecordsPerCommit: 10 });
    await outbox.append({ lane: Lane.telemetry, deviceId: 'dev-0', ts: TS0, deviceSeq: 1, kind: RecordKind.telemetry, body: '{"ts":1,"metrics":{}}' });
    await outbox.close();
    const newer = SCHEMA_VERSION + 1;
    const { owned } = await startChild(['write-newer-and-crash', path, String(newer)], 'newer-written');
    await owned.closed;
    expect(walBytes(path), 'the newer agent left committed frames in the WAL').toBeGreaterThan(0);
    return newer;
  }

  function expectNewerRefusal(err: unknown, path: string, newer: number): void {
    expect(isOutpostError(err, ErrorCode.OUTBOX_UNSAFE), `expected OutpostError OUTBOX_UNSAFE, got ${String(err)}`).toBe(true);
    const e = err as OutpostError;
    expect(e.message).toBe(
      `${path}: outbox schema ${newer} is newer than this agent's ${SCHEMA_VERSION}: upgrade the agent (or move the file away to start an empty outbox); the file is untouched`,
    );
    expect(e.details).toEqual({ path, schemaVersion: newer, agentSchemaVersion: SCHEMA_VERSION });
  }

  it('openOutbox refuses it with the versions and leaves the file and its WAL byte for byte as they were', async () => {
    const path = join(dir.path, 'data', OUTBOX_FILE_NAME);
    const newer = await writeNewerOutbox(path);
    const before = fingerprint(path);
    const err = await open(path).catch((e: unknown) => e);
    expectNewerRefusal(err, path, newer);
    expect(fingerprint(path)).toEqual(before);
    // Again, as an agent in a restart loop would.
    expectNewerRefusal(await open(path).catch((e: unknown) => e), path, newer);
    expect(fingerprint(path)).toEqual(before);
    expect((await inspect(path)).version).toBe(newer);
  });

  it('the agent binary stops at start with that error, and the file is untouched', async () => {
    const dataDir = join(dir.path, 'data');
    const path = join(dataDir, OUTBOX_FILE_NAME);
    const newer = await writeNewerOutbox(path);
    const before = fingerprint(path);
    const err = await startAgentProcess(testAgentConfig(dataDir, { agentId: AGENT_ID, log: { level: 'info' } })).catch((e: unknown) => e);
    expect(isOutpostError(err, ErrorCode.HARNESS_START_FAILED), String(err)).toBe(true);
    const output = (err as Error).message;
    expect(output).toContain('exited before ready (code 1,');
    expect(output).toContain(`outbox schema ${newer} is newer than this agent's ${SCHEMA_VERSION}: upgrade the agent`);
    expect(output).toContain(ErrorCode.OUTBOX_UNSAFE);
    expect(fingerprint(path)).toEqual(before);
  });
});
