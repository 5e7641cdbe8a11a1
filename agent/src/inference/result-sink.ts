import { randomUUID } from 'node:crypto';
import { EpisodeCloseReason, inferenceTopic, InferenceUpstream, Lane, RecordKind, type InferenceResult, type InferenceSummary, type Logger, type ModelRef } from '@outpost/shared';
import type { Outbox } from '../buffer/index.js';
import type { AgentMetrics } from '../metrics.js';
import { createEpisodeTracker, type EpisodeEvent, type MetricEvidence } from './episodes.js';

/** Outbox record kinds of inference output (the contract with the control plane). */
export const InferenceRecordKind = {
  /** Every result, telemetry lane: only with `inference.upstream: every-score`. */
  inference: RecordKind.inference,
  /** A device's anomaly episode began (its first flagged window), events lane (drained first, evicted last). */
  anomalyOpened: RecordKind.anomalyOpened,
  /** The episode ended: the whole of it, events lane. */
  anomalyClosed: RecordKind.anomalyClosed,
  /** One device's scores of one model over one interval, telemetry lane: with `inference.upstream: summaries` (the default). */
  summary: RecordKind.inferenceSummary,
} as const;

/** Publishes one message locally: the embedded broker, or the site broker in bridge mode. Must not throw. */
export type LocalPublish = (topic: string, payload: string) => void;

export interface ResultSink {
  /**
   * Publishes the result on `devices/{deviceId}/inference` at once; upstream, feeds the device's
   * anomaly episode (an `anomaly-opened` record when it begins, `anomaly-closed` when it ends,
   * events lane), and appends the result as an `inference` record (every-score) or into the
   * device's summary of the interval (summaries). Never waits and never throws: a failed append
   * is counted and logged.
   *
   * @param deviceSeq the device seq of the newest telemetry in the scored window, so a
   *   result can be tied to the message that completed its window.
   * @param threshold the threshold the result was judged by (kept in the summary)
   * @param evidence per metric, its strongest detector in this window, when the model gives evidence
   */
  deliver(deviceId: string, deviceSeq: number | undefined, result: InferenceResult, threshold: number, evidence?: readonly MetricEvidence[]): void;
  /** Appends every open summary now (at close; a swap closes the old model's as its rows come in). */
  flush(): void;
  /** Closes every open episode (`shutdown`), stops the timers after appending what is open. Idempotent. */
  close(): void;
}

export interface ResultSinkOptions {
  outbox: Outbox;
  publish: LocalPublish;
  metrics: AgentMetrics;
  logger: Logger;
  upstream: InferenceUpstream;
  /** Interval of the per-device summaries, ms. */
  summaryIntervalMs: number;
  /** An open episode of a device without a scored window for this long closes (`silent`), ms. */
  episodeSilenceMs: number;
}

/** One device's open summary. */
interface OpenSummary {
  model: ModelRef;
  fromTs: number;
  toTs: number;
  count: number;
  sum: number;
  max: number;
  anomalies: number;
  threshold: number;
}

/** Writes inference results where DESIGN section 2 says they go. */
export function createResultSink(options: ResultSinkOptions): ResultSink {
  const { outbox, publish, metrics, logger, upstream } = options;
  let lastFailureLogMs = -Infinity;
  const failed = (err: unknown): void => {
    metrics.inferenceResultsUnstored.inc();
    // A full disk fails every append: one log line per 10 s is enough, the counter has the rest.
    if (performance.now() - lastFailureLogMs > 10_000) {
      lastFailureLogMs = performance.now();
      logger.error({ err }, 'inference result not stored in the outbox');
    }
  };
  const appendDone = (error: Error | null): void => {
    if (error !== null) failed(error);
  };

  const open = new Map<string, OpenSummary>();
  const appendSummary = (deviceId: string, s: OpenSummary): void => {
    const body: InferenceSummary = {
      fromTs: s.fromTs,
      toTs: s.toTs,
      model: s.model,
      count: s.count,
      mean: s.sum / s.count,
      max: s.max,
      anomalies: s.anomalies,
      ...(Number.isFinite(s.threshold) ? { threshold: s.threshold } : {}),
    };
    outbox.appendWith({ lane: Lane.telemetry, deviceId, ts: s.toTs, deviceSeq: undefined, kind: InferenceRecordKind.summary, body: JSON.stringify(body) }, appendDone);
  };
  const flush = (): void => {
    for (const [deviceId, s] of open) appendSummary(deviceId, s);
    open.clear();
  };
  const timer = upstream === InferenceUpstream.summaries ? setInterval(flush, options.summaryIntervalMs) : undefined;
  timer?.unref();

  const episodes = createEpisodeTracker({ silenceMs: options.episodeSilenceMs, newId: randomUUID });
  const appendEpisodes = (events: readonly EpisodeEvent[], deviceSeq?: number): void => {
    for (const event of events) {
      const opened = event.type === 'opened';
      metrics.inferenceEpisodes.inc({ event: opened ? 'opened' : 'closed' });
      outbox.appendWith(
        {
          lane: Lane.events,
          deviceId: event.deviceId,
          ts: opened ? event.body.startTs : event.body.endTs,
          deviceSeq: opened ? deviceSeq : undefined,
          kind: opened ? InferenceRecordKind.anomalyOpened : InferenceRecordKind.anomalyClosed,
          body: JSON.stringify(event.body),
        },
        appendDone,
      );
    }
    metrics.inferenceOpenEpisodes.set(episodes.openCount);
  };
  // A quarter of the silence: a silent device's episode closes within 1.25 times it.
  const silenceTimer = setInterval(() => appendEpisodes(episodes.closeSilent(performance.now())), Math.max(250, options.episodeSilenceMs / 4));
  silenceTimer.unref();
  let closed = false;

  return {
    deliver(deviceId, deviceSeq, result, threshold, evidence) {
      const body = JSON.stringify(result);
      publish(inferenceTopic(deviceId), body);
      const events = episodes.observe(deviceId, { ...result, threshold, evidence }, performance.now());
      if (events.length > 0) appendEpisodes(events, deviceSeq);
      if (upstream === InferenceUpstream.everyScore) {
        outbox.appendWith({ lane: Lane.telemetry, deviceId, ts: result.ts, deviceSeq, kind: InferenceRecordKind.inference, body }, appendDone);
        return;
      }
      let s = open.get(deviceId);
      if (s !== undefined && (s.model.name !== result.model.name || s.model.version !== result.model.version || s.threshold !== threshold)) {
        // A summary is of one model and threshold: a swap or a new threshold closes the open one.
        appendSummary(deviceId, s);
        s = undefined;
      }
      if (s === undefined) {
        open.set(deviceId, { model: result.model, fromTs: result.ts, toTs: result.ts, count: 1, sum: result.score, max: result.score, anomalies: result.anomaly ? 1 : 0, threshold });
        return;
      }
      s.count++;
      s.sum += result.score;
      if (result.score > s.max) s.max = result.score;
      if (result.anomaly) s.anomalies++;
      if (result.ts < s.fromTs) s.fromTs = result.ts;
      if (result.ts > s.toTs) s.toTs = result.ts;
    },
    flush,
    close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      clearInterval(silenceTimer);
      appendEpisodes(episodes.closeAll(EpisodeCloseReason.shutdown));
      flush();
    },
  };
}
