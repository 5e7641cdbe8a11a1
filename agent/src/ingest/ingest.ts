import { checkTelemetryFast, Lane, RejectReason, TelemetrySchema, type DeviceError, type Logger } from '@outpost/shared';
import type { Outbox } from '../buffer/index.js';
import type { AgentMetrics } from '../metrics.js';
import type { RateLimiter } from './rate-limiter.js';

/** A dead letter keeps at most this much of the rejected payload. */
export const DEAD_LETTER_MAX_PAYLOAD_BYTES = 4096;

/** What became of one device publish. The broker maps each to an MQTT outcome. */
export type IngestOutcome =
  /** Committed to the outbox: acknowledge. */
  | { type: 'accepted'; seq: number }
  /** Committed as a dead letter with its reason and answered to the device: acknowledge, do not route. */
  | { type: 'dead-lettered'; reason: RejectReason }
  /**
   * Not stored. For QoS 1 the publish must stay unacknowledged (the broker closes the
   * connection and the device resends), so nothing acknowledged is ever lost.
   */
  | { type: 'refused'; reason: 'rate-limited' | 'storage-failed'; error?: unknown };

export interface IngestOptions {
  outbox: Outbox;
  rateLimiter: RateLimiter;
  metrics: AgentMetrics;
  logger: Logger;
  /** Sends a message to the device on `devices/{id}/errors`; must not throw. */
  answer: (deviceId: string, error: DeviceError) => void;
}

export interface Ingest {
  /**
   * Validates a telemetry publish and commits it (or its dead letter) to the outbox.
   * Resolves only after the commit, so the caller may acknowledge then. Never rejects.
   */
  handleTelemetry(deviceId: string, topic: string, payload: Buffer, receivedAtMs?: number): Promise<IngestOutcome>;
  /** False while the latest commit attempt failed (e.g. disk full), true again after the next success. */
  storageHealthy(): boolean;
  /** Publishes committed and rejected since start. */
  counts(): { accepted: number; rejected: number };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

type Parsed =
  | { ok: true; body: string; ts: number; deviceSeq: number | undefined }
  | { ok: false; reason: RejectReason; detail: string; deviceSeq?: number | undefined };

/** Pure: bytes -> a validated, normalised telemetry body, or why not. */
export function parseTelemetryPayload(payload: Buffer): Parsed {
  let text: string;
  try {
    text = utf8.decode(payload);
  } catch {
    return { ok: false, reason: RejectReason.notUtf8, detail: 'payload is not valid UTF-8' };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return { ok: false, reason: RejectReason.invalidJson, detail: `payload is not JSON: ${(err as Error).message}` };
  }
  // The hand-written accept path first; zod for the rest, which also words the errors.
  const fast = checkTelemetryFast(json);
  const result = fast === undefined ? TelemetrySchema.safeParse(json) : { success: true as const, data: fast };
  if (!result.success) {
    const detail = result.error.issues
      .slice(0, 5)
      .map((i) => `${i.path.map(String).join('.') || '(payload)'}: ${i.message}`)
      .join('; ');
    const seq = (json as { seq?: unknown } | null)?.seq;
    return { ok: false, reason: RejectReason.invalidPayload, detail, deviceSeq: Number.isSafeInteger(seq) ? (seq as number) : undefined };
  }
  const t = result.data;
  // Normalised body: only the contract's fields, in a fixed order.
  const body = JSON.stringify(t.seq === undefined ? { ts: t.ts, metrics: t.metrics } : { ts: t.ts, seq: t.seq, metrics: t.metrics });
  return { ok: true, body, ts: t.ts, deviceSeq: t.seq };
}

/** The ingest stage: rate limit -> parse -> validate -> outbox (or dead letter + answer). */
export function createIngest(options: IngestOptions): Ingest {
  const { outbox, rateLimiter, metrics, logger, answer } = options;
  let storageOk = true;
  let accepted = 0;
  let rejected = 0;

  function storageFailed(error: unknown, deviceId: string): IngestOutcome {
    metrics.storageFailures.inc();
    if (storageOk) logger.error({ err: error, deviceId }, 'outbox commit failed; publishes stay unacknowledged until commits succeed again');
    storageOk = false;
    return { type: 'refused', reason: 'storage-failed', error };
  }

  async function deadLetter(deviceId: string, topic: string, payload: Buffer, reason: RejectReason, detail: string, deviceSeq?: number): Promise<IngestOutcome> {
    try {
      await outbox.appendDeadLetter({ deviceId, topic, reason, detail, payload: payload.subarray(0, DEAD_LETTER_MAX_PAYLOAD_BYTES) });
    } catch (error) {
      return storageFailed(error, deviceId);
    }
    storageOk = true;
    rejected++;
    metrics.rejected.inc({ reason });
    answer(deviceId, { ts: Date.now(), reason, topic, detail, ...(deviceSeq === undefined ? {} : { seq: deviceSeq }) });
    return { type: 'dead-lettered', reason };
  }

  return {
    async handleTelemetry(deviceId, topic, payload, receivedAtMs = performance.now()) {
      if (!rateLimiter.tryTake(deviceId)) {
        rejected++;
        metrics.rejected.inc({ reason: RejectReason.rateLimited });
        answer(deviceId, { ts: Date.now(), reason: RejectReason.rateLimited, topic, detail: 'device is over its message rate; QoS 1 messages are not acknowledged and will be resent' });
        return { type: 'refused', reason: 'rate-limited' };
      }
      const parsed = parseTelemetryPayload(payload);
      if (!parsed.ok) return deadLetter(deviceId, topic, payload, parsed.reason, parsed.detail, parsed.deviceSeq);
      try {
        const seq = await outbox.append({ lane: Lane.telemetry, deviceId, ts: parsed.ts, deviceSeq: parsed.deviceSeq, kind: 'telemetry', body: parsed.body });
        storageOk = true;
        accepted++;
        metrics.accepted.inc();
        metrics.commitLatency.observe((performance.now() - receivedAtMs) / 1000);
        return { type: 'accepted', seq };
      } catch (error) {
        return storageFailed(error, deviceId);
      }
    },
    storageHealthy: () => storageOk,
    counts: () => ({ accepted, rejected }),
  };
}
