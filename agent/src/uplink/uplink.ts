import { promisify } from 'node:util';
import { gzip as gzipCallback, constants as zlibConstants } from 'node:zlib';
import {
  BATCH_ENCODING_SUMMARY,
  ENCODING_HEADER,
  frameSummaryBatch,
  RecordKind,
  type BatchDeviceSummary,
  type BatchSummary,
  LANES_IN_DRAIN_ORDER,
  batchMsgId,
  evictionMsgId,
  evictionSubject,
  uplinkSubject,
  type EvictionReport,
  type FaultsConfig,
  type Lane,
  type Logger,
  type UplinkConfig,
  createBackoff,
  type BackoffPolicy,
} from '@outpost/shared';
import type { Outbox, StoredRecord } from '../buffer/index.js';
import type { AgentMetrics } from '../metrics.js';
import type { UplinkTransport } from './nats-transport.js';

const gzip = promisify(gzipCallback);

/** One device's part of a batch while it is encoded. */
interface DeviceParts {
  kinds: Map<string, number>;
  runs: [number, number][];
  ts: number[];
  lastTs: number;
  newest: StoredRecord | undefined;
}

/**
 * The latest reading of a device from its newest telemetry record. A body that is not a
 * telemetry body (a hand-edited row) gives no metrics, which the control plane refuses as a
 * latest value, as it refuses such a body's metrics when it reads the record itself.
 */
function latestOf(record: StoredRecord): NonNullable<BatchDeviceSummary['latest']> {
  let metrics: [string, number][] = [];
  try {
    const parsed = (JSON.parse(record.body) as { metrics?: unknown } | null)?.metrics;
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
      const entries = Object.entries(parsed);
      if (entries.every(([, value]) => typeof value === 'number' && Number.isFinite(value))) metrics = entries as [string, number][];
    }
  } catch {
    // Unreadable: no metrics.
  }
  return { seq: record.seq, ts: record.ts, receivedAtMs: record.receivedAtMs, metrics };
}

/** When nothing wakes the uplink, it looks at the outbox again after this long anyway. */
export const IDLE_RECHECK_MS = 1_000;
/**
 * Pauses after failed publishes while still connected: the first short (a restarted server
 * answers on the socket a moment before its JetStream does), then doubling up to the max,
 * with equal jitter so agents that failed together do not retry together.
 */
export const RETRY_PAUSE: BackoffPolicy = { initialMs: 25, maxMs: 500, jitter: 'equal' };

export interface UplinkOptions {
  agentId: string;
  epoch: string;
  config: UplinkConfig;
  outbox: Outbox;
  transport: UplinkTransport;
  metrics: AgentMetrics;
  logger: Logger;
  faults?: FaultsConfig | undefined;
  /** Ends the process at once (chaos tests); only main.ts knows how. */
  crash?: (() => void) | undefined;
}

export interface Uplink {
  /** New records were committed: look at the outbox now. */
  kick(): void;
  /** The outbox evicted records: report them upstream. */
  evictionsChanged(): void;
  /** Called with the record count of each batch JetStream acknowledged and the outbox deleted. */
  onRecordsAcknowledged(listener: (records: number) => void): void;
  close(): Promise<void>;
}

interface InFlight {
  lane: Lane;
  lastSeq: number;
  records: number;
  ack: Promise<{ duplicate: boolean }>;
  /** Set when `ack` has settled, so acknowledged heads can be collected without waiting. */
  outcome?: { ok: true; duplicate: boolean } | { ok: false; error: unknown };
}

/**
 * Drains the outbox to JetStream (DESIGN section 2): lane by lane in seq order, events before
 * telemetry, in gzip-compressed batches with a Nats-Msg-Id, up to `maxInFlightBatches`
 * pipelined, deleting a range only after JetStream acknowledged it and every batch before it.
 * Any failure rewinds to the oldest record still in the outbox; what JetStream already has is
 * then sent again and dropped as a duplicate by the control plane's accounting.
 */
export function startUplink(options: UplinkOptions): Uplink {
  const { agentId, epoch, config, outbox, transport, metrics, logger, faults, crash } = options;
  let stopping = false;
  let wake: (() => void) | undefined;
  let evictionsReportedThrough = 0;
  let evictionsPending = true;
  let batchesPublished = 0;
  let batchesAcknowledged = 0;
  const ackListeners: ((records: number) => void)[] = [];

  /** A kick that came while nothing waited: the next wait returns at once instead of missing it. */
  let kicked = false;
  const kick = (): void => {
    const w = wake;
    wake = undefined;
    if (w === undefined) kicked = true;
    else w();
  };
  transport.onEvent(kick);

  /** Sleeps until kicked, stopped, or `ms` passed; returns at once when a kick came since the last wait. */
  const pause = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      if (kicked || stopping) {
        kicked = false;
        resolve();
        return;
      }
      const timer = setTimeout(() => {
        wake = undefined;
        resolve();
      }, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  const crashIf = (point: FaultsConfig['crashAt']): void => {
    if (faults?.crashAt === point && batchesPublished >= faults.afterBatches) {
      logger.warn({ point, batchesPublished }, 'fault injection: crashing');
      (crash ?? (() => { throw new Error(`fault injected at ${point}`); }))();
    }
  };

  /**
   * A batch as BATCH_ENCODING_SUMMARY: the summary the control plane's accounting reads
   * (BatchSummarySchema) and the records, one JSON object per line, for its live view. Each
   * body is already JSON text the agent validated and wrote itself, so it is spliced into its
   * line rather than parsed and stringified again; only the newest telemetry body of each
   * device is parsed, for its latest reading. Both parts are compressed in the thread pool.
   */
  async function encode(lane: Lane, records: StoredRecord[]): Promise<Buffer> {
    const devices = new Map<string, DeviceParts>();
    const seqs: [number, number][] = [];
    const lines = new Array<string>(records.length);
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      const deviceSeq = r.deviceSeq === undefined || r.deviceSeq === null ? '' : `,"deviceSeq":${r.deviceSeq}`;
      lines[i] = `{"seq":${r.seq},"deviceId":${JSON.stringify(r.deviceId)},"ts":${r.ts},"receivedAtMs":${r.receivedAtMs}${deviceSeq},"kind":${JSON.stringify(r.kind)},"body":${r.body}}`;
      const range = seqs[seqs.length - 1];
      if (range !== undefined && range[1] + 1 === r.seq) range[1] = r.seq;
      else seqs.push([r.seq, r.seq]);
      let d = devices.get(r.deviceId);
      if (d === undefined) {
        d = { kinds: new Map(), runs: [], ts: [], lastTs: 0, newest: undefined };
        devices.set(r.deviceId, d);
      }
      d.kinds.set(r.kind, (d.kinds.get(r.kind) ?? 0) + 1);
      if (r.kind !== RecordKind.telemetry) continue;
      if (d.newest === undefined || r.ts > d.newest.ts || (r.ts === d.newest.ts && r.seq > d.newest.seq)) d.newest = r;
      if (r.deviceSeq === undefined || r.deviceSeq === null) continue;
      const run = d.runs[d.runs.length - 1];
      if (run !== undefined && run[0] + run[1] === r.deviceSeq) run[1]++;
      else d.runs.push([r.deviceSeq, 1]);
      d.ts.push(d.ts.length === 0 ? r.ts : r.ts - d.lastTs);
      d.lastTs = r.ts;
    }
    const summary: BatchSummary = {
      agentId,
      epoch,
      lane,
      firstSeq: records[0]!.seq,
      lastSeq: records.at(-1)!.seq,
      seqs,
      devices: [...devices].map(([deviceId, d]): BatchDeviceSummary => ({
        deviceId,
        kinds: [...d.kinds],
        ...(d.runs.length === 0 ? {} : { telemetry: { runs: d.runs, ts: d.ts } }),
        ...(d.newest === undefined ? {} : { latest: latestOf(d.newest) }),
      })),
    };
    // Level 1: most of gzip's gain on repetitive JSON at a fraction of the CPU.
    const options = { level: zlibConstants.Z_BEST_SPEED };
    const [summaryGz, recordsGz] = await Promise.all([gzip(JSON.stringify(summary), options), gzip(lines.join('\n'), options)]);
    return frameSummaryBatch(summaryGz, recordsGz);
  }

  async function reportEvictions(): Promise<void> {
    if (!evictionsPending) return;
    evictionsPending = false;
    for (const e of await outbox.evictions(evictionsReportedThrough)) {
      const report: EvictionReport = {
        id: e.id,
        agentId,
        epoch,
        lane: e.lane,
        reason: e.reason,
        firstSeq: e.firstSeq,
        lastSeq: e.lastSeq,
        records: e.records,
        bytes: e.bytes,
        byDevice: e.byDevice,
        ...(e.deviceSeqs.length === 0 ? {} : { deviceSeqs: e.deviceSeqs }),
        atMs: e.atMs,
      };
      await transport.publish(evictionSubject(agentId), Buffer.from(JSON.stringify(report)), { msgId: evictionMsgId(agentId, epoch, e.id) });
      evictionsReportedThrough = e.id;
    }
  }

  /**
   * Waits for the oldest batch's ack, then takes every consecutive acknowledged batch off the
   * front and deletes their ranges with one statement per lane: a delete is a write
   * transaction (an fsync at durability power) on the connection ingest commits on, so one per
   * group, not one per batch. Throws when the oldest batch failed.
   */
  async function settle(inFlight: InFlight[]): Promise<void> {
    await inFlight[0]!.ack;
    const acknowledged: InFlight[] = [];
    for (let head = inFlight[0]; head?.outcome !== undefined; head = inFlight[0]) {
      if (!head.outcome.ok) break;
      inFlight.shift();
      if (head.outcome.duplicate) metrics.uplinkDuplicates.inc();
      acknowledged.push(head);
    }
    crashIf('after-ack-before-delete');
    const throughSeq = new Map<Lane, number>();
    for (const batch of acknowledged) throughSeq.set(batch.lane, Math.max(throughSeq.get(batch.lane) ?? 0, batch.lastSeq));
    for (const [lane, seq] of throughSeq) await outbox.deleteThrough(lane, seq);
    batchesAcknowledged += acknowledged.length;
    for (const batch of acknowledged) {
      metrics.uplinkRecords.inc({ lane: batch.lane }, batch.records);
      for (const listener of ackListeners) listener(batch.records);
    }
  }

  /** The oldest unsent records, events lane first; an empty list when both lanes are drained. */
  async function readNext(sentThrough: Readonly<Record<Lane, number>>): Promise<{ lane: Lane; records: StoredRecord[] } | undefined> {
    for (const lane of LANES_IN_DRAIN_ORDER) {
      const records = await outbox.read(lane, sentThrough[lane], config.batchMaxRecords);
      if (records.length > 0) return { lane, records };
    }
    return undefined;
  }

  /** Drains until disconnected, stopped or failed; throws on a failed publish. */
  async function drain(): Promise<void> {
    // Every ack already has a catch handler, so batches abandoned on a failure reject quietly.
    const inFlight: InFlight[] = [];
    // Start from the oldest record still present: anything after a failure is sent again.
    const sentThrough: Record<Lane, number> = { events: 0, telemetry: 0 };
    // Read-ahead: the next batch is read from SQLite (a worker thread) while this one is encoded
    // and compressed, so a backlog drains with the two overlapping instead of in turn.
    let next: Promise<Awaited<ReturnType<typeof readNext>>> | undefined;
    try {
      while (!stopping && transport.connected()) {
        await reportEvictions();
        const batch = await (next ?? readNext(sentThrough));
        next = undefined;
        if (batch === undefined) {
          if (inFlight.length > 0) await settle(inFlight);
          else await pause(IDLE_RECHECK_MS);
          continue;
        }
        const { lane } = batch;
        let { records } = batch;
        const last = records.at(-1)!.seq;
        sentThrough[lane] = last;
        // A full batch means more is waiting; a short one means the lane is nearly drained, where
        // reading again at once would only find the records that arrived meanwhile.
        if (records.length === config.batchMaxRecords) next = readNext(sentThrough);
        if (records.some((r) => r.corrupt !== undefined)) {
          // One unreadable row must not make the whole batch unreadable upstream (and lost once
          // deleted here): it is dropped and reported like an eviction, the rest goes on.
          await outbox.discardCorrupt(lane, records.filter((r) => r.corrupt !== undefined));
          records = records.filter((r) => r.corrupt === undefined);
          if (records.length === 0) continue;
        }
        const first = records[0]!.seq;
        const payload = await encode(lane, records);
        crashIf('after-commit-before-publish');
        const ack = transport.publish(uplinkSubject(agentId, lane), payload, {
          msgId: batchMsgId(agentId, epoch, lane, first, last),
          headers: { [ENCODING_HEADER]: BATCH_ENCODING_SUMMARY },
        });
        ack.catch(() => undefined); // awaited in order by settle(); a rejection here must not go unhandled
        batchesPublished++;
        metrics.uplinkBatches.inc({ lane });
        if (faults?.crashAt === 'after-publish-before-ack' && batchesPublished > faults.afterBatches) {
          await transport.flush();
          crashIf('after-publish-before-ack');
        }
        const entry: InFlight = { lane, lastSeq: last, records: records.length, ack };
        ack.then(
          (a) => (entry.outcome = { ok: true, duplicate: a.duplicate }),
          (error: unknown) => (entry.outcome = { ok: false, error }),
        );
        inFlight.push(entry);
        if (inFlight.length >= config.maxInFlightBatches) await settle(inFlight);
      }
      while (inFlight.length > 0) await settle(inFlight);
    } finally {
      // A read-ahead left behind by a failure or a stop: let it finish quietly.
      next?.catch(() => undefined);
    }
  }

  const running = (async () => {
    const retryPause = createBackoff(RETRY_PAUSE);
    while (!stopping) {
      if (!transport.connected()) {
        metrics.uplinkConnected.set(0);
        if (kicked) kicked = false;
        else await Promise.race([transport.whenConnected(), new Promise<void>((resolve) => (wake = resolve))]);
        continue;
      }
      metrics.uplinkConnected.set(1);
      const acknowledgedBefore = batchesAcknowledged;
      try {
        await drain();
      } catch (error) {
        if (stopping) break;
        metrics.uplinkErrors.inc();
        evictionsPending = true;
        if (batchesAcknowledged > acknowledgedBefore) retryPause.reset();
        const retryInMs = Math.round(retryPause.next());
        logger.warn({ err: error, retryInMs }, 'uplink publish failed; resending from the oldest unacknowledged record');
        if (transport.connected()) await pause(retryInMs);
      }
    }
  })();

  return {
    kick,
    evictionsChanged() {
      evictionsPending = true;
      kick();
    },
    onRecordsAcknowledged(listener) {
      ackListeners.push(listener);
    },
    async close() {
      stopping = true;
      kick();
      await running;
    },
  };
}
