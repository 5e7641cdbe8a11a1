// The drain loop against an in-memory outbox (lanes with seqs, deleteThrough, evictions,
// discardCorrupt, as the SQLite outbox does them) and a transport whose acks the test resolves,
// fails or leaves pending, so ordering, pipelining and rewinds can be forced exactly. With the
// real outbox and a real nats-server: tests/src/e2e/uplink-chaos.test.ts and exactly-once.test.ts.
//
// The fakes settle on microtasks only, and so does gzip here (below), so one turn of the event
// loop (`idle()`) lets the uplink do everything it can without an ack: that is how "it did not
// publish" or "it did not delete" is observed, without waiting for time.
import { setImmediate as idle } from 'node:timers/promises';
import { gunzipSync, type ZlibOptions } from 'node:zlib';
import type * as Zlib from 'node:zlib';
import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { BatchSummarySchema, splitSummaryBatch, type BatchSummary, type Lane, type UplinkBatch, type UplinkConfig } from '@outpost/shared';
import type { EvictionRow, Outbox, OutboxStats, StoredRecord } from '../buffer/index.js';
import { createAgentMetrics } from '../metrics.js';
import type { PublishAck, TransportEvent, UplinkTransport } from './nats-transport.js';
import { startUplink, type Uplink } from './uplink.js';

// zlib's gzip runs on the libuv thread pool and calls back whenever it is done; compressed in
// place and answered on a microtask, the uplink's encode step waits for no outside event.
vi.mock('node:zlib', async (importOriginal) => {
  const zlib = await importOriginal<typeof Zlib>();
  const gzip = (input: Buffer | string, options: ZlibOptions, callback: (error: Error | null, result: Buffer) => void): void => {
    const result = zlib.gzipSync(input, options);
    queueMicrotask(() => callback(null, result));
  };
  return { ...zlib, gzip };
});

const AGENT = 'gw-1';
const EPOCH = 'epoch0001';
const logger = pino({ level: 'silent' });

function uplinkConfig(overrides: Partial<UplinkConfig>): UplinkConfig {
  return {
    servers: ['nats://127.0.0.1:1'],
    apiPrefix: '$JS.API',
    inboxPrefix: '_INBOX',
    batchMaxRecords: 2,
    maxInFlightBatches: 1,
    heartbeatIntervalMs: 10_000,
    pingIntervalMs: 6_000,
    maxPingOut: 2,
    connectTimeoutMs: 5_000,
    publishTimeoutMs: 10_000,
    reconnectBaseWaitMs: 250,
    reconnectMaxWaitMs: 10_000,
    desiredRecheckMs: 30_000,
    ...overrides,
  };
}

/** The outbox's semantics in memory: seqs per lane, reads after a seq, deletes through a seq, eviction rows. */
class MemoryOutbox implements Outbox {
  setMaxBytes(): void {}
  readonly agentId = AGENT;
  readonly epoch = EPOCH;
  readonly path = ':memory:';
  readonly rows: Record<Lane, StoredRecord[]> = { events: [], telemetry: [] };
  readonly evictionRows: EvictionRow[] = [];
  /** Every deleteThrough call, in order, as `lane<=seq`. */
  readonly deletes: string[] = [];
  /** Every discardCorrupt call: the seqs it was given. */
  readonly discarded: number[][] = [];
  /** Called after each committed eviction, as the agent wires the real outbox to the uplink. */
  onEviction: (eviction: EvictionRow) => void = () => undefined;
  #nextSeq: Record<Lane, number> = { events: 1, telemetry: 1 };

  /** Commits `count` records to `lane`; those whose seq is in `corrupt` read back with `corrupt` set. */
  add(lane: Lane, count: number, corrupt: readonly number[] = []): void {
    for (let k = 0; k < count; k++) {
      const seq = this.#nextSeq[lane]++;
      const record: StoredRecord = { lane, seq, deviceId: 'd1', ts: 1_000 + seq, deviceSeq: seq, kind: lane === 'events' ? 'anomaly' : 'telemetry', body: `{"n":${seq}}`, receivedAtMs: 2_000 + seq, bytes: 60 };
      this.rows[lane].push(corrupt.includes(seq) ? { ...record, corrupt: 'body is not valid JSON' } : record);
    }
  }

  /**
   * Drops the oldest `count` records of `lane` for the byte bound, as a commit does, and tells
   * `onEviction` unless `notify` is false (an outbox opened without the callback).
   */
  evictOldest(lane: Lane, count: number, notify = true): EvictionRow {
    const evicted = this.rows[lane].splice(0, count);
    const eviction = this.#addEviction(lane, evicted, 'full');
    if (notify) this.onEviction(eviction);
    return eviction;
  }

  #addEviction(lane: Lane, rows: readonly StoredRecord[], reason: EvictionRow['reason']): EvictionRow {
    const [firstSeq, lastSeq] = [rows[0]!.seq, rows.at(-1)!.seq];
    const deviceSeqs: EvictionRow['deviceSeqs'] = reason === 'full' && lane === 'telemetry' ? [['d1', [[firstSeq, lastSeq]]]] : [];
    const eviction: EvictionRow = { id: this.evictionRows.length + 1, lane, reason, firstSeq, lastSeq, records: rows.length, bytes: 60 * rows.length, byDevice: { d1: rows.length }, deviceSeqs, atMs: 3_000 };
    this.evictionRows.push(eviction);
    return eviction;
  }

  seqs(lane: Lane): number[] {
    return this.rows[lane].map((r) => r.seq);
  }

  read(lane: Lane, afterSeq: number, limit: number): Promise<StoredRecord[]> {
    // What is committed when the read is issued, as SQLite answers it.
    const found = this.rows[lane].filter((r) => r.seq > afterSeq).slice(0, Math.max(0, limit));
    return Promise.resolve(found.map((r) => ({ ...r })));
  }

  deleteThrough(lane: Lane, seq: number): Promise<number> {
    const before = this.rows[lane].length;
    this.rows[lane] = this.rows[lane].filter((r) => r.seq > seq);
    this.deletes.push(`${lane}<=${seq}`);
    return Promise.resolve(before - this.rows[lane].length);
  }

  evictions(afterId = 0): Promise<EvictionRow[]> {
    return Promise.resolve(this.evictionRows.filter((e) => e.id > afterId));
  }

  discardCorrupt(lane: Lane, records: readonly StoredRecord[]): Promise<EvictionRow> {
    const seqs = records.map((r) => r.seq);
    this.discarded.push(seqs);
    const present = this.rows[lane].filter((r) => seqs.includes(r.seq));
    if (present.length === 0) return Promise.reject(new Error(`no row of ${seqs.join(', ')} left in ${lane}`));
    this.rows[lane] = this.rows[lane].filter((r) => !seqs.includes(r.seq));
    const eviction = this.#addEviction(lane, present, 'corrupt');
    this.onEviction(eviction);
    return Promise.resolve(eviction);
  }

  append(): Promise<number> {
    return Promise.reject(new Error('the uplink never appends'));
  }

  appendWith(_record: unknown, done: (error: Error | null, seq: number) => void): void {
    queueMicrotask(() => done(new Error('the uplink never appends'), 0));
  }

  appendDeadLetter(): Promise<void> {
    return Promise.reject(new Error('the uplink never appends'));
  }

  deadLetters(): Promise<never[]> {
    return Promise.resolve([]);
  }

  deviceWindow(): Promise<never[]> {
    return Promise.resolve([]);
  }

  pruneDeviceWindow(): Promise<number> {
    return Promise.resolve(0);
  }

  stats(): OutboxStats {
    const count = (lane: Lane) => this.rows[lane].length;
    return { records: { events: count('events'), telemetry: count('telemetry') }, bytes: 0, maxBytes: 1, evicted: { events: 0, telemetry: 0 }, evictedBytes: 0, deadLetters: 0, deadLettersDropped: 0, commits: 0, committedRecords: 0 };
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

interface Publish {
  subject: string;
  payload: Buffer;
  /** The Nats-Msg-Id without the `agent:epoch:` prefix, e.g. `telemetry:1-2` or `evict:1`. */
  id: string;
  headers: Record<string, string> | undefined;
  /** Publishes before this one whose ack had not settled when it was made. */
  unsettledBefore: number;
  settled: boolean;
  ack(duplicate?: boolean): void;
  fail(error?: Error): void;
}

/** A JetStream publisher whose acks are settled by the test (or at once, for subjects `autoAck` accepts). */
class FakeTransport implements UplinkTransport {
  readonly publishes: Publish[] = [];
  autoAck: (subject: string) => boolean = () => false;
  /** Called inside each publish, before it returns. */
  onPublish: (publish: Publish) => void = () => undefined;
  #waiters: { count: number; resolve: () => void }[] = [];
  #listeners: ((event: TransportEvent) => void)[] = [];

  connected(): boolean {
    return true;
  }

  whenConnected(): Promise<void> {
    return Promise.resolve();
  }

  // The uplink reads no desired state: these are the reconciler's.
  request(): Promise<never> {
    return Promise.reject(new Error('not used by the uplink'));
  }

  subscribe(): void {}

  publish(subject: string, payload: Uint8Array, options: { msgId?: string; headers?: Record<string, string> }): Promise<PublishAck> {
    let resolve!: (ack: PublishAck) => void;
    let reject!: (error: Error) => void;
    const ack = new Promise<PublishAck>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const publish: Publish = {
      subject,
      payload: Buffer.from(payload),
      id: (options.msgId ?? '').replace(`${AGENT}:${EPOCH}:`, ''),
      headers: options.headers,
      unsettledBefore: this.publishes.filter((p) => !p.settled).length,
      settled: false,
      ack: (duplicate = false) => {
        publish.settled = true;
        resolve({ streamSeq: this.publishes.indexOf(publish) + 1, duplicate });
      },
      fail: (error = new Error('publish timed out')) => {
        publish.settled = true;
        reject(error);
      },
    };
    this.publishes.push(publish);
    this.onPublish(publish);
    if (this.autoAck(subject)) publish.ack();
    for (const w of this.#waiters.filter((w) => this.publishes.length >= w.count)) w.resolve();
    return ack;
  }

  /** Resolves with publish number `index` (0-based) once it has been made. */
  async published(index: number): Promise<Publish> {
    if (this.publishes.length <= index) await new Promise<void>((resolve) => this.#waiters.push({ count: index + 1, resolve }));
    return this.publishes[index]!;
  }

  ids(): string[] {
    return this.publishes.map((p) => p.id);
  }

  flush(): Promise<void> {
    return Promise.resolve();
  }

  onEvent(listener: (event: TransportEvent) => void): void {
    this.#listeners.push(listener);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

const isEvictionReport = (subject: string): boolean => subject.endsWith('.evictions');

function start(outbox: MemoryOutbox, transport: FakeTransport, config: Partial<UplinkConfig>): { uplink: Uplink; metrics: ReturnType<typeof createAgentMetrics> } {
  const metrics = createAgentMetrics({ agentId: AGENT });
  const uplink = startUplink({ agentId: AGENT, epoch: EPOCH, config: uplinkConfig(config), outbox, transport, metrics, logger });
  outbox.onEviction = () => uplink.evictionsChanged();
  return { uplink, metrics };
}

/** The summary and the records of a published batch (BATCH_ENCODING_SUMMARY). */
function decodeParts(publish: Publish): { summary: BatchSummary; records: UplinkBatch['records'] } {
  const parts = splitSummaryBatch(publish.payload);
  if (parts === undefined) throw new Error('not a summary batch');
  const summary = BatchSummarySchema.parse(JSON.parse(gunzipSync(parts.summaryGz).toString('utf8')));
  const records = gunzipSync(parts.recordsGz)
    .toString('utf8')
    .split('\n')
    .map((line) => JSON.parse(line) as UplinkBatch['records'][number]);
  return { summary, records };
}

function decode(publish: Publish): UplinkBatch {
  const { summary, records } = decodeParts(publish);
  const { agentId, epoch, lane, firstSeq, lastSeq } = summary;
  return { agentId, epoch, lane, firstSeq, lastSeq, records };
}

async function counter(metric: { get(): Promise<{ values: { value: number; labels: object }[] }> }): Promise<number> {
  return (await metric.get()).values.reduce((sum, v) => sum + v.value, 0);
}

describe('startUplink', () => {
  it('drains the events lane before telemetry, and an event committed mid-drain goes before the rest of telemetry', async () => {
    const outbox = new MemoryOutbox();
    const transport = new FakeTransport();
    outbox.add('telemetry', 6);
    outbox.add('events', 1);
    transport.autoAck = () => true;
    // Committed while telemetry 1-2 is being published, when telemetry 3-4 was already read ahead.
    transport.onPublish = (p) => {
      if (p.id === 'telemetry:1-2') outbox.add('events', 1);
    };
    const { uplink } = start(outbox, transport, { batchMaxRecords: 2, maxInFlightBatches: 1 });
    await transport.published(4);
    expect(transport.ids()).toEqual(['events:1-1', 'telemetry:1-2', 'telemetry:3-4', 'events:2-2', 'telemetry:5-6']);
    expect(transport.publishes.map((p) => p.subject)).toEqual([
      `outpost.uplink.${AGENT}.events`,
      `outpost.uplink.${AGENT}.telemetry`,
      `outpost.uplink.${AGENT}.telemetry`,
      `outpost.uplink.${AGENT}.events`,
      `outpost.uplink.${AGENT}.telemetry`,
    ]);
    const batch = decode(transport.publishes[1]!);
    expect(batch).toMatchObject({ agentId: AGENT, epoch: EPOCH, lane: 'telemetry', firstSeq: 1, lastSeq: 2 });
    expect(batch.records).toEqual([
      { seq: 1, deviceId: 'd1', ts: 1_001, receivedAtMs: 2_001, deviceSeq: 1, kind: 'telemetry', body: { n: 1 } },
      { seq: 2, deviceId: 'd1', ts: 1_002, receivedAtMs: 2_002, deviceSeq: 2, kind: 'telemetry', body: { n: 2 } },
    ]);
    expect(transport.publishes[1]!.headers).toEqual({ 'Outpost-Encoding': 'gzip+summary+ndjson' });
    // The summary the control plane counts from: agent seqs, and per device its kinds, device seqs with their ts, latest reading.
    expect(decodeParts(transport.publishes[1]!).summary).toEqual({
      agentId: AGENT,
      epoch: EPOCH,
      lane: 'telemetry',
      firstSeq: 1,
      lastSeq: 2,
      seqs: [[1, 2]],
      // These bodies hold no metrics: an empty latest reading, which the control plane does not take.
      devices: [{ deviceId: 'd1', kinds: [['telemetry', 2]], telemetry: { runs: [[1, 2]], ts: [1_001, 1] }, latest: { seq: 2, ts: 1_002, receivedAtMs: 2_002, metrics: [] } }],
    });
    await uplink.close();
    expect(outbox.seqs('events')).toEqual([]);
    expect(outbox.seqs('telemetry')).toEqual([]);
  });

  it('pipelines up to maxInFlightBatches publishes and no more', async () => {
    const outbox = new MemoryOutbox();
    const transport = new FakeTransport();
    outbox.add('telemetry', 12);
    const { uplink } = start(outbox, transport, { batchMaxRecords: 2, maxInFlightBatches: 3 });
    // Three out without a single ack: a loop that waited for each ack would never get here.
    await transport.published(2);
    await idle();
    expect(transport.publishes).toHaveLength(3);
    transport.publishes[0]!.ack();
    await transport.published(3);
    await idle();
    expect(transport.publishes).toHaveLength(4);
    for (const p of transport.publishes.slice(1)) p.ack();
    await transport.published(5);
    transport.publishes[4]!.ack();
    transport.publishes[5]!.ack();
    await uplink.close();
    expect(transport.ids()).toEqual(['telemetry:1-2', 'telemetry:3-4', 'telemetry:5-6', 'telemetry:7-8', 'telemetry:9-10', 'telemetry:11-12']);
    // Each publish saw at most maxInFlightBatches - 1 unacknowledged ones before it.
    expect(transport.publishes.map((p) => p.unsettledBefore)).toEqual([0, 1, 2, 2, 0, 1]);
  });

  it('deletes a range only once its batch and every batch before it are acknowledged', async () => {
    const outbox = new MemoryOutbox();
    const transport = new FakeTransport();
    outbox.add('telemetry', 6);
    const { uplink, metrics } = start(outbox, transport, { batchMaxRecords: 2, maxInFlightBatches: 3 });
    const [first, second, third] = [await transport.published(0), await transport.published(1), await transport.published(2)];
    second.ack();
    third.ack(true);
    await idle();
    // Out of order: JetStream has 3-6, but 1-2 may still be lost, and deleteThrough cuts from the bottom.
    expect(outbox.deletes).toEqual([]);
    expect(outbox.seqs('telemetry')).toEqual([1, 2, 3, 4, 5, 6]);
    first.ack();
    await uplink.close();
    // One delete for the three acknowledged batches together.
    expect(outbox.deletes).toEqual(['telemetry<=6']);
    expect(outbox.seqs('telemetry')).toEqual([]);
    expect(await counter(metrics.uplinkRecords)).toBe(6);
    expect(await counter(metrics.uplinkDuplicates)).toBe(1);
  });

  it('rewinds after a failed publish to the oldest record still in the outbox and sends it again', async () => {
    const outbox = new MemoryOutbox();
    const transport = new FakeTransport();
    outbox.add('telemetry', 6);
    const { uplink, metrics } = start(outbox, transport, { batchMaxRecords: 2, maxInFlightBatches: 3 });
    const [first, second] = [await transport.published(0), await transport.published(1), await transport.published(2)];
    first.ack();
    second.fail();
    // 1-2 is acknowledged and deleted; 3-4 failed, and 5-6 (its ack still pending) is abandoned.
    const resent = await transport.published(3);
    expect(outbox.deletes).toEqual(['telemetry<=2']);
    expect(resent.id).toBe('telemetry:3-4');
    resent.ack();
    (await transport.published(4)).ack();
    await uplink.close();
    expect(transport.ids()).toEqual(['telemetry:1-2', 'telemetry:3-4', 'telemetry:5-6', 'telemetry:3-4', 'telemetry:5-6']);
    expect(outbox.seqs('telemetry')).toEqual([]);
    expect(await counter(metrics.uplinkErrors)).toBe(1);
  });

  it('reports evictions before any batch, again when the report failed, and new ones after a batch failed', async () => {
    const outbox = new MemoryOutbox();
    const transport = new FakeTransport();
    outbox.add('telemetry', 8);
    outbox.evictOldest('telemetry', 4);
    const { uplink } = start(outbox, transport, { batchMaxRecords: 2, maxInFlightBatches: 1 });
    const report = await transport.published(0);
    expect(report.subject).toBe(`outpost.agent.${AGENT}.evictions`);
    expect(report.id).toBe('evict:1');
    expect(JSON.parse(report.payload.toString('utf8'))).toEqual({
      id: 1,
      agentId: AGENT,
      epoch: EPOCH,
      lane: 'telemetry',
      reason: 'full',
      firstSeq: 1,
      lastSeq: 4,
      records: 4,
      bytes: 240,
      byDevice: { d1: 4 },
      deviceSeqs: [['d1', [[1, 4]]]],
      atMs: 3_000,
    });
    report.fail();
    // The report that failed goes again, still before any batch.
    const again = await transport.published(1);
    expect(again.id).toBe('evict:1');
    again.ack();
    const batch = await transport.published(2);
    expect(batch.id).toBe('telemetry:5-6');
    // An eviction the uplink is not told about (no onEviction) is found after the next failure,
    // before the resend, which starts at the oldest record left.
    outbox.evictOldest('telemetry', 1, false);
    batch.fail();
    const afterFailure = await transport.published(3);
    expect(afterFailure.id).toBe('evict:2');
    afterFailure.ack();
    (await transport.published(4)).ack();
    (await transport.published(5)).ack();
    await uplink.close();
    expect(transport.ids()).toEqual(['evict:1', 'evict:1', 'telemetry:5-6', 'evict:2', 'telemetry:6-7', 'telemetry:8-8']);
    expect(outbox.seqs('telemetry')).toEqual([]);
  });

  it('discards a corrupt row, reports it as an eviction and sends the rest of its batch', async () => {
    const outbox = new MemoryOutbox();
    const transport = new FakeTransport();
    transport.autoAck = isEvictionReport;
    outbox.add('telemetry', 4, [2]);
    const { uplink } = start(outbox, transport, { batchMaxRecords: 3, maxInFlightBatches: 1 });
    const batch = await transport.published(0);
    expect(outbox.discarded).toEqual([[2]]);
    expect(batch.id).toBe('telemetry:1-3');
    expect(decode(batch).records.map((r) => r.seq)).toEqual([1, 3]);
    batch.ack();
    const report = await transport.published(1);
    expect(report.id).toBe('evict:1');
    expect(JSON.parse(report.payload.toString('utf8'))).toMatchObject({ reason: 'corrupt', firstSeq: 2, lastSeq: 2, records: 1 });
    (await transport.published(2)).ack();
    await uplink.close();
    expect(transport.ids()).toEqual(['telemetry:1-3', 'evict:1', 'telemetry:4-4']);
    expect(outbox.deletes).toEqual(['telemetry<=3', 'telemetry<=4']);
  });

  it('close() waits for the batches in flight, deletes what they acknowledged and publishes nothing more', async () => {
    const outbox = new MemoryOutbox();
    const transport = new FakeTransport();
    outbox.add('telemetry', 6);
    const { uplink } = start(outbox, transport, { batchMaxRecords: 2, maxInFlightBatches: 2 });
    const [first, second] = [await transport.published(0), await transport.published(1)];
    let closed = false;
    const closing = uplink.close().then(() => (closed = true));
    await idle();
    expect(closed).toBe(false);
    first.ack();
    await idle();
    expect(closed).toBe(false);
    expect(outbox.seqs('telemetry')).toEqual([3, 4, 5, 6]);
    second.ack();
    await closing;
    expect(outbox.deletes).toEqual(['telemetry<=2', 'telemetry<=4']);
    expect(outbox.seqs('telemetry')).toEqual([5, 6]);
    expect(transport.ids()).toEqual(['telemetry:1-2', 'telemetry:3-4']);
  });
});
