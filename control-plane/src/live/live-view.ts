// The live view of one replica: the recent window per device, the anomalies (episodes), and the events
// pushed to dashboards, all read from OUTPOST_UPLINK with two ephemeral ordered consumers (one
// per lane, so the long anomaly look-back reads only the small events lane). Nothing here is
// state of record: a replica that starts reads the window back from the stream.
import {
  ENCODING_HEADER,
  Lane,
  RecordKind,
  ServerEventType,
  UPLINK_STREAM,
  type ControlPlaneLiveConfig,
  type Logger,
} from '@outpost/shared';
import { decodeUplinkMessage } from '../ingest/decode.js';
import type { ControlPlaneMetrics } from '../metrics.js';
import { uplinkLaneFilter } from '../nats/topology.js';
import type { Consumption, NatsClient, TailMessage } from '../nats/types.js';
import { createAnomalyLog, type AnomalyLog } from './anomaly-log.js';
import type { EventHub } from './event-hub.js';
import { toEpisodeRecord, toLiveRecord } from './live-record.js';
import { createRecentWindow, type RecentWindow } from './recent-window.js';

export interface LiveViewOptions {
  nats: NatsClient;
  config: ControlPlaneLiveConfig;
  /** A batch that decompresses to more than this is skipped (the accounting refuses it too). */
  maxBatchBytes: number;
  hub: EventHub;
  metrics: ControlPlaneMetrics;
  logger: Logger;
  now?: () => number;
  /** How often old entries are dropped; default 5 000 ms. */
  pruneIntervalMs?: number;
}

export interface LiveView {
  readonly window: RecentWindow;
  readonly anomalies: AnomalyLog;
  /** Stops reading; idempotent. */
  close(): Promise<void>;
}

export const DEFAULT_PRUNE_INTERVAL_MS = 5_000;

/** Starts reading; returns at once (the window fills while the stream is read back). */
export function startLiveView(options: LiveViewOptions): LiveView {
  const { nats, config, hub, metrics, logger } = options;
  const now = options.now ?? Date.now;
  const window = createRecentWindow({ windowMs: config.recentWindowMs, maxPointsPerDevice: config.maxPointsPerDevice, maxDevices: config.maxDevices });
  const anomalies = createAnomalyLog({ retentionMs: config.anomalyRetentionMs, maxAnomalies: config.maxAnomalies });
  const startedAtMs = now();
  const caughtUp: Record<Lane, boolean> = { [Lane.events]: false, [Lane.telemetry]: false };

  const handle = (lane: Lane) => (message: TailMessage) => {
    metrics.liveTailPending.set({ lane }, message.pending);
    // Read back from before this replica started: history for the window, not news for the streams.
    const live = caughtUp[lane] || message.storedAtMs >= startedAtMs;
    if (message.pending === 0) caughtUp[lane] = true;
    const decoded = decodeUplinkMessage(message.subject, message.header(ENCODING_HEADER), message.data, options.maxBatchBytes);
    // A summary batch's records: read here with a check of their own, never validated by zod
    // unless one fails it (the accounting reads only the summary).
    const records = decoded.ok ? (decoded.value.type === 'batch' ? { ok: true as const, value: decoded.value.batch.records } : decoded.value.records()) : decoded;
    if (!decoded.ok || !records.ok) {
      // The accounting consumer refuses and counts it; here it is only skipped.
      logger.debug({ subject: message.subject, streamSeq: message.streamSeq, reason: records.ok ? undefined : records.reason }, 'live view skipped a bad batch');
      return;
    }
    const batch = decoded.value.type === 'batch' ? decoded.value.batch : decoded.value.summary;
    const inWindow = message.storedAtMs >= now() - config.recentWindowMs;
    for (const record of records.value) {
      const episode = toEpisodeRecord(batch, record);
      if (episode !== undefined) {
        metrics.liveRecords.inc({ kind: record.kind });
        const anomaly = anomalies.addEpisode(episode, message.storedAtMs);
        if (anomaly !== undefined && live) {
          const { agentId, deviceId, ts, score, threshold, model } = anomaly;
          hub.publish({ type: ServerEventType.anomaly, data: { agentId, deviceId, ts, score, anomaly: true, model, ...(threshold === undefined ? {} : { threshold }) } });
        }
        continue;
      }
      const rec = toLiveRecord(batch, record);
      if (rec === undefined) continue;
      metrics.liveRecords.inc({ kind: rec.type });
      const added = inWindow && window.add(rec, message.storedAtMs);
      if (rec.type === RecordKind.telemetry) {
        if (added && live) hub.publish({ type: ServerEventType.telemetry, data: { agentId: rec.agentId, deviceId: rec.deviceId, ts: rec.ts, receivedAtMs: rec.receivedAtMs, metrics: rec.metrics } });
        continue;
      }
      const event = { agentId: rec.agentId, deviceId: rec.deviceId, ...rec.result };
      if (rec.type === RecordKind.inference || rec.type === RecordKind.inferenceSummary) {
        if (added && live) hub.publish({ type: ServerEventType.inference, data: event });
        continue;
      }
      const logged = anomalies.add({ ...event, receivedAtMs: rec.receivedAtMs }, `${rec.agentId}:${rec.key}`, message.storedAtMs);
      if (logged && live) hub.publish({ type: ServerEventType.anomaly, data: event });
    }
  };

  const tails: Consumption[] = [
    nats.tail(UPLINK_STREAM, { filterSubject: uplinkLaneFilter(Lane.telemetry), startTimeMs: () => now() - config.recentWindowMs }, handle(Lane.telemetry)),
    nats.tail(UPLINK_STREAM, { filterSubject: uplinkLaneFilter(Lane.events), startTimeMs: () => now() - config.anomalyRetentionMs }, handle(Lane.events)),
  ];

  const prune = (): void => {
    const nowMs = now();
    window.prune(nowMs);
    anomalies.prune(nowMs);
    metrics.liveDevices.set(window.devices());
    metrics.liveAnomalies.set(anomalies.size());
  };
  const pruneTimer = setInterval(prune, options.pruneIntervalMs ?? DEFAULT_PRUNE_INTERVAL_MS);
  pruneTimer.unref();

  let closing: Promise<void> | undefined;
  return {
    window,
    anomalies,
    close() {
      closing ??= (async () => {
        clearInterval(pruneTimer);
        await Promise.all(tails.map((t) => t.stop()));
      })();
      return closing;
    },
  };
}
