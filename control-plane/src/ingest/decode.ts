// The control plane's trust boundary on NATS: an agent's message becomes a typed value here or
// is refused with a reason. Nothing past this file sees bytes.
import { gunzipSync } from 'node:zlib';
import {
  BATCH_ENCODING,
  EvictionReportSchema,
  HeartbeatSchema,
  parseAgentSubject,
  UplinkBatchSchema,
  type EvictionReport,
  type Heartbeat,
  type UplinkBatch,
} from '@outpost/shared';

/** Why a message was refused; a label of the bad-message metric. */
export const BadMessageReason = {
  unknownSubject: 'unknown-subject',
  unsupportedEncoding: 'unsupported-encoding',
  notGzip: 'not-gzip',
  tooLarge: 'too-large',
  notJson: 'not-json',
  invalid: 'invalid',
  /** The payload names another agent or lane than its subject (an agent may speak only for itself). */
  subjectMismatch: 'subject-mismatch',
  /** A record's seq lies outside the batch's [firstSeq, lastSeq]. */
  seqOutOfRange: 'seq-out-of-range',
} as const;
export type BadMessageReason = (typeof BadMessageReason)[keyof typeof BadMessageReason];

export type Decoded<T> = { ok: true; value: T } | { ok: false; reason: BadMessageReason; detail: string };

const bad = (reason: BadMessageReason, detail: string): Decoded<never> => ({ ok: false, reason, detail });

function parseJson(bytes: Uint8Array): Decoded<unknown> {
  try {
    return { ok: true, value: JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')) };
  } catch (err) {
    return bad(BadMessageReason.notJson, (err as Error).message);
  }
}

function issues(error: { issues: readonly { path: readonly PropertyKey[]; message: string }[] }): string {
  return error.issues
    .slice(0, 5)
    .map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`)
    .join('; ');
}

/**
 * Decodes one uplink message: `Outpost-Encoding: gzip+json`, gzip of an UplinkBatchSchema
 * JSON, on `outpost.uplink.{agentId}.{lane}` matching the batch's own agentId and lane.
 * One schema parse validates the envelope and every record (zod 4 parses about 1M objects/s).
 */
export function decodeUplinkBatch(subject: string, encoding: string | undefined, data: Uint8Array, maxBytes: number): Decoded<UplinkBatch> {
  const parsed = parseAgentSubject(subject);
  if (parsed?.type !== 'uplink') return bad(BadMessageReason.unknownSubject, subject);
  if (encoding !== BATCH_ENCODING) return bad(BadMessageReason.unsupportedEncoding, `encoding ${JSON.stringify(encoding ?? null)}, expected ${BATCH_ENCODING}`);
  let json: Buffer;
  try {
    json = gunzipSync(data, { maxOutputLength: maxBytes });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ERR_BUFFER_TOO_LARGE') return bad(BadMessageReason.tooLarge, `decompresses to more than ${maxBytes} bytes`);
    return bad(BadMessageReason.notGzip, (err as Error).message);
  }
  const value = parseJson(json);
  if (!value.ok) return value;
  const result = UplinkBatchSchema.safeParse(value.value);
  if (!result.success) return bad(BadMessageReason.invalid, issues(result.error));
  const batch = result.data;
  if (batch.agentId !== parsed.agentId || batch.lane !== parsed.lane) {
    return bad(BadMessageReason.subjectMismatch, `batch of ${batch.agentId}/${batch.lane} on ${subject}`);
  }
  for (const record of batch.records) {
    if (record.seq < batch.firstSeq || record.seq > batch.lastSeq) {
      return bad(BadMessageReason.seqOutOfRange, `record seq ${record.seq} outside [${batch.firstSeq}, ${batch.lastSeq}]`);
    }
  }
  return { ok: true, value: batch };
}

export type AgentEvent = { type: 'heartbeat'; heartbeat: Heartbeat } | { type: 'eviction'; report: EvictionReport };

/** Decodes a heartbeat or eviction report (plain JSON) on `outpost.agent.{agentId}.*`. */
export function decodeAgentEvent(subject: string, data: Uint8Array): Decoded<AgentEvent> {
  const parsed = parseAgentSubject(subject);
  if (parsed === undefined || parsed.type === 'uplink') return bad(BadMessageReason.unknownSubject, subject);
  const value = parseJson(data);
  if (!value.ok) return value;
  if (parsed.type === 'heartbeat') {
    const result = HeartbeatSchema.safeParse(value.value);
    if (!result.success) return bad(BadMessageReason.invalid, issues(result.error));
    if (result.data.agentId !== parsed.agentId) return bad(BadMessageReason.subjectMismatch, `heartbeat of ${result.data.agentId} on ${subject}`);
    return { ok: true, value: { type: 'heartbeat', heartbeat: result.data } };
  }
  const result = EvictionReportSchema.safeParse(value.value);
  if (!result.success) return bad(BadMessageReason.invalid, issues(result.error));
  const report = result.data;
  if (report.agentId !== parsed.agentId) return bad(BadMessageReason.subjectMismatch, `eviction report of ${report.agentId} on ${subject}`);
  if (report.lastSeq < report.firstSeq) return bad(BadMessageReason.invalid, 'lastSeq: must be >= firstSeq');
  return { ok: true, value: { type: 'eviction', report } };
}
