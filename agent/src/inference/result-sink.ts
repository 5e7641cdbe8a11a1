import { inferenceTopic, Lane, type InferenceResult, type Logger } from '@outpost/shared';
import type { Outbox } from '../buffer/index.js';
import type { AgentMetrics } from '../metrics.js';

/** Outbox record kinds of inference output (the contract with the control plane). */
export const InferenceRecordKind = {
  /** Every result, telemetry lane. */
  inference: 'inference',
  /** Results with `anomaly: true`, again, in the events lane (drained first, evicted last). */
  anomaly: 'anomaly',
} as const;

/** Publishes one message locally: the embedded broker, or the site broker in bridge mode. Must not throw. */
export type LocalPublish = (topic: string, payload: string) => void;

export interface ResultSink {
  /**
   * Publishes the result on `devices/{deviceId}/inference` at once and appends it to the
   * outbox (kind `inference`, plus kind `anomaly` in the events lane when flagged). Never
   * waits and never throws: a failed append is counted and logged.
   *
   * @param deviceSeq the device seq of the newest telemetry in the scored window, so a
   *   result can be tied to the message that completed its window.
   */
  deliver(deviceId: string, deviceSeq: number | undefined, result: InferenceResult): void;
}

/** Writes inference results where DESIGN section 2 says they go. */
export function createResultSink(options: { outbox: Outbox; publish: LocalPublish; metrics: AgentMetrics; logger: Logger }): ResultSink {
  const { outbox, publish, metrics, logger } = options;
  let lastFailureLogMs = -Infinity;
  const failed = (err: unknown): void => {
    metrics.inferenceResultsUnstored.inc();
    // A full disk fails every append: one log line per 10 s is enough, the counter has the rest.
    if (performance.now() - lastFailureLogMs > 10_000) {
      lastFailureLogMs = performance.now();
      logger.error({ err }, 'inference result not stored in the outbox');
    }
  };
  return {
    deliver(deviceId, deviceSeq, result) {
      const body = JSON.stringify(result);
      publish(inferenceTopic(deviceId), body);
      outbox.append({ lane: Lane.telemetry, deviceId, ts: result.ts, deviceSeq, kind: InferenceRecordKind.inference, body }).catch(failed);
      if (result.anomaly) outbox.append({ lane: Lane.events, deviceId, ts: result.ts, deviceSeq, kind: InferenceRecordKind.anomaly, body }).catch(failed);
    },
  };
}
