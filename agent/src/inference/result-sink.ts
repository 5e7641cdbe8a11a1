import { inferenceTopic, InferenceUpstream, Lane, RecordKind, type InferenceResult, type InferenceSummary, type Logger, type ModelRef } from '@outpost/shared';
import type { Outbox } from '../buffer/index.js';
import type { AgentMetrics } from '../metrics.js';

/** Outbox record kinds of inference output (the contract with the control plane). */
export const InferenceRecordKind = {
  /** Every result, telemetry lane: only with `inference.upstream: every-score`. */
  inference: RecordKind.inference,
  /** Results with `anomaly: true`, again, in the events lane (drained first, evicted last). */
  anomaly: RecordKind.anomaly,
  /** One device's scores of one model over one interval, telemetry lane: with `inference.upstream: summaries` (the default). */
  summary: RecordKind.inferenceSummary,
} as const;

/** Publishes one message locally: the embedded broker, or the site broker in bridge mode. Must not throw. */
export type LocalPublish = (topic: string, payload: string) => void;

export interface ResultSink {
  /**
   * Publishes the result on `devices/{deviceId}/inference` at once; upstream, appends it as an
   * `anomaly` record (events lane) when flagged, and as an `inference` record (every-score) or
   * into the device's summary of the interval (summaries). Never waits and never throws: a
   * failed append is counted and logged.
   *
   * @param deviceSeq the device seq of the newest telemetry in the scored window, so a
   *   result can be tied to the message that completed its window.
   * @param threshold the threshold the result was judged by (kept in the summary)
   */
  deliver(deviceId: string, deviceSeq: number | undefined, result: InferenceResult, threshold: number): void;
  /** Appends every open summary now (at close; a swap closes the old model's as its rows come in). */
  flush(): void;
  /** Stops the summary timer after appending what is open. Idempotent. */
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
  let closed = false;

  return {
    deliver(deviceId, deviceSeq, result, threshold) {
      const body = JSON.stringify(result);
      publish(inferenceTopic(deviceId), body);
      if (result.anomaly) outbox.appendWith({ lane: Lane.events, deviceId, ts: result.ts, deviceSeq, kind: InferenceRecordKind.anomaly, body }, appendDone);
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
      flush();
    },
  };
}
