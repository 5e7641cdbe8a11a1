import { isAscii } from 'node:buffer';
import { checkTelemetryFast, Lane, RecordKind, RejectReason, TelemetrySchema, type DeviceError, type DeviceResendReport, type Logger } from '@outpost/shared';
import type { Outbox } from '../buffer/index.js';
import type { AgentMetrics } from '../metrics.js';
import type { RateLimiter } from './rate-limiter.js';
import type { ResendWindow, TrackedMessage } from './resend-window.js';

/** A dead letter keeps at most this much of the rejected payload. */
export const DEAD_LETTER_MAX_PAYLOAD_BYTES = 4096;

/** What became of one device publish. The broker maps each to an MQTT outcome. */
export type IngestOutcome =
  /** Committed to the outbox: acknowledge. */
  | { type: 'accepted'; seq: number }
  /** Committed as a dead letter with its reason and answered to the device: acknowledge, do not route. */
  | { type: 'dead-lettered'; reason: RejectReason }
  /** A resend of a message committed before: acknowledge again, do not store or route it twice. */
  | { type: 'resend' }
  /**
   * Not stored. `rate-limited` is a QoS 0 publish over the device's rate (dropped and counted:
   * QoS 1/2 publishes are paced by the broker instead). For QoS 1 a `storage-failed` publish
   * must stay unacknowledged (the broker closes the connection and the device resends), so
   * nothing acknowledged is ever lost.
   */
  | { type: 'refused'; reason: 'rate-limited' | 'storage-failed'; error?: unknown };

export interface IngestOptions {
  outbox: Outbox;
  /** Applied to QoS 0 publishes here; QoS 1/2 publishes are paced by the broker from the same limiter. */
  rateLimiter: RateLimiter;
  /** Recognises resends of committed messages (built from `outbox.deviceWindow()`). */
  resendWindow: ResendWindow;
  metrics: AgentMetrics;
  logger: Logger;
  /** Sends a message to the device on `devices/{id}/errors`; must not throw. */
  answer: (deviceId: string, error: DeviceError) => void;
}

export interface TelemetryPublish {
  /** 0 when unknown (the bridge): a QoS 0 publish over the rate is dropped. */
  qos: 0 | 1 | 2;
  /** When the publish reached the agent (performance.now() ms), for the ack-latency histogram. */
  receivedAtMs?: number | undefined;
}

export interface Ingest {
  /**
   * Validates a telemetry publish and commits it (or its dead letter) to the outbox; a resend
   * of a committed message is recognised and reported instead of stored again. Resolves only
   * after the commit, so the caller may acknowledge then. Never rejects.
   */
  handleTelemetry(deviceId: string, topic: string, payload: Buffer, publish: TelemetryPublish): Promise<IngestOutcome>;
  /**
   * `handleTelemetry` with a callback, called once, never synchronously: the broker's hot
   * path, with no promise per publish. `done` must not throw.
   */
  submitTelemetry(deviceId: string, topic: string, payload: Buffer, publish: TelemetryPublish, done: (outcome: IngestOutcome) => void): void;
  /** False while the latest commit attempt failed (e.g. disk full), true again after the next success. */
  storageHealthy(): boolean;
  /** Publishes committed, rejected and recognised as resends since start. */
  counts(): { accepted: number; rejected: number; resends: number };
}

/** Once the resend window has dropped this many devices, the persisted window is pruned to match. */
const PRUNE_WINDOW_AFTER_FORGOTTEN = 256;

const utf8 = new TextDecoder('utf-8', { fatal: true });

type Parsed =
  | { ok: true; body: string; ts: number; deviceSeq: number | undefined }
  | { ok: false; reason: RejectReason; detail: string; deviceSeq?: number | undefined };

/** Pure: bytes -> a validated, normalised telemetry body, or why not. */
export function parseTelemetryPayload(payload: Buffer): Parsed {
  let text: string;
  // ASCII (nearly every payload) is valid UTF-8 and decodes as latin1, the cheapest decoder;
  // anything else goes through the strict UTF-8 decoder, which refuses invalid sequences.
  if (isAscii(payload)) {
    text = payload.toString('latin1');
  } else {
    try {
      text = utf8.decode(payload);
    } catch {
      return { ok: false, reason: RejectReason.notUtf8, detail: 'payload is not valid UTF-8' };
    }
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
  // Normalised body: only the contract's fields, in a fixed order (the fast check's value is already that).
  const body = JSON.stringify(fast ?? (t.seq === undefined ? { ts: t.ts, metrics: t.metrics } : { ts: t.ts, seq: t.seq, metrics: t.metrics }));
  return { ok: true, body, ts: t.ts, deviceSeq: t.seq };
}

/** The ingest stage: rate limit (QoS 0) -> parse -> validate -> resend check -> outbox (or dead letter + answer). */
export function createIngest(options: IngestOptions): Ingest {
  const { outbox, rateLimiter, resendWindow, metrics, logger, answer } = options;
  let storageOk = true;
  let accepted = 0;
  let rejected = 0;
  let resends = 0;
  let forgottenDevices = 0;
  let pruning = false;

  function storageFailed(error: unknown, deviceId: string): IngestOutcome {
    metrics.storageFailures.inc();
    if (storageOk) logger.error({ err: error, deviceId }, 'outbox commit failed; publishes stay unacknowledged until commits succeed again');
    storageOk = false;
    return { type: 'refused', reason: 'storage-failed', error };
  }

  async function deadLetter(deviceId: string, topic: string, payload: Buffer, reason: RejectReason, detail: string, deviceSeq?: number): Promise<IngestOutcome> {
    try {
      await outbox.appendDeadLetter({ deviceId, topic, reason, detail, payload: payload.subarray(0, DEAD_LETTER_MAX_PAYLOAD_BYTES), deviceSeq });
    } catch (error) {
      return storageFailed(error, deviceId);
    }
    storageOk = true;
    rejected++;
    metrics.rejected.inc({ reason });
    answer(deviceId, { ts: Date.now(), reason, topic, detail, ...(deviceSeq === undefined ? {} : { seq: deviceSeq }) });
    return { type: 'dead-lettered', reason };
  }

  /**
   * A resend: stored once already, so only a small report goes upstream (the control plane
   * counts it as a device duplicate); the device is acknowledged once the report commits.
   */
  async function resend(deviceId: string, deviceSeq: number, ts: number): Promise<IngestOutcome> {
    const report: DeviceResendReport = { seq: deviceSeq, ts };
    try {
      await outbox.append({ lane: Lane.events, deviceId, ts, deviceSeq, kind: RecordKind.deviceResend, body: JSON.stringify(report) });
    } catch (error) {
      return storageFailed(error, deviceId);
    }
    storageOk = true;
    resends++;
    metrics.deviceResends.inc();
    return { type: 'resend' };
  }

  /** Keeps the persisted resend window about as small as the one in memory. */
  function pruneWindowIfDue(): void {
    forgottenDevices += resendWindow.takeForgotten();
    if (pruning || forgottenDevices < PRUNE_WINDOW_AFTER_FORGOTTEN) return;
    pruning = true;
    forgottenDevices = 0;
    outbox
      .pruneDeviceWindow(resendWindow.devices())
      .catch((err: unknown) => logger.warn({ err }, 'pruning the persisted resend window failed; it is tried again later'))
      .finally(() => (pruning = false));
  }

  /** The end of a telemetry commit: counts, the resend window, then the caller's callback. */
  function committedTelemetry(deviceId: string, receivedAtMs: number, tracked: TrackedMessage | undefined, error: Error | null, seq: number, done: (outcome: IngestOutcome) => void): void {
    if (tracked !== undefined) resendWindow.settle(tracked, error === null);
    if (error !== null) return done(storageFailed(error, deviceId));
    storageOk = true;
    accepted++;
    metrics.accepted.inc();
    metrics.commitLatency.observe((performance.now() - receivedAtMs) / 1000);
    done({ type: 'accepted', seq });
  }

  /** The rare paths (a resend, a dead letter), with promises. */
  function settleLater(outcome: Promise<IngestOutcome>, done: (outcome: IngestOutcome) => void): void {
    outcome.then(done, (error: unknown) => done(storageFailed(error, '(unknown)')));
  }

  function submitTelemetry(deviceId: string, topic: string, payload: Buffer, publish: TelemetryPublish, done: (outcome: IngestOutcome) => void): void {
    const receivedAtMs = publish.receivedAtMs ?? performance.now();
    if (publish.qos === 0 && !rateLimiter.tryTake(deviceId)) {
      rejected++;
      metrics.rejected.inc({ reason: RejectReason.rateLimited });
      answer(deviceId, { ts: Date.now(), reason: RejectReason.rateLimited, topic, detail: 'device is over its message rate; QoS 0 messages over it are dropped (QoS 1 and 2 are read more slowly instead)' });
      queueMicrotask(() => done({ type: 'refused', reason: 'rate-limited' }));
      return;
    }
    const parsed = parseTelemetryPayload(payload);
    if (!parsed.ok) return settleLater(deadLetter(deviceId, topic, payload, parsed.reason, parsed.detail, parsed.deviceSeq), done);
    const { deviceSeq } = parsed;
    if (deviceSeq !== undefined) {
      const seen = resendWindow.check(deviceId, deviceSeq, parsed.ts);
      if (seen.type === 'resend') return settleLater(resend(deviceId, deviceSeq, parsed.ts), done);
      if (seen.type === 'pending') {
        // The original is still committing: its outcome decides (committed: a resend; failed: new data).
        return settleLater(
          seen.committed.then((committed) =>
            committed ? resend(deviceId, deviceSeq, parsed.ts) : new Promise<IngestOutcome>((resolve) => submitTelemetry(deviceId, topic, payload, { ...publish, receivedAtMs }, resolve)),
          ),
          done,
        );
      }
    }
    const tracked = deviceSeq === undefined ? undefined : resendWindow.track(deviceId, deviceSeq, parsed.ts);
    outbox.appendWith({ lane: Lane.telemetry, deviceId, ts: parsed.ts, deviceSeq, kind: RecordKind.telemetry, body: parsed.body }, (error, seq) =>
      committedTelemetry(deviceId, receivedAtMs, tracked, error, seq, done),
    );
    if (tracked !== undefined) pruneWindowIfDue();
  }

  return {
    handleTelemetry(deviceId, topic, payload, publish) {
      return new Promise((resolve) => submitTelemetry(deviceId, topic, payload, publish, resolve));
    },
    submitTelemetry,
    storageHealthy: () => storageOk,
    counts: () => ({ accepted, rejected, resends }),
  };
}
