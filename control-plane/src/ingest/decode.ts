// The control plane's trust boundary on NATS: an agent's message becomes a typed value here or
// is refused with a reason. Nothing past this file sees bytes.
import { gunzipSync } from 'node:zlib';
import {
  BATCH_ENCODING,
  BATCH_ENCODING_SUMMARY,
  BatchSummarySchema,
  DEVICE_ID_PATTERN,
  EvictionReportSchema,
  HeartbeatSchema,
  parseAgentSubject,
  splitSummaryBatch,
  UplinkBatchSchema,
  UplinkRecordSchema,
  type BatchSummary,
  type EvictionReport,
  type Heartbeat,
  type UplinkBatch,
  type UplinkRecord,
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

/**
 * One uplink message, decoded as far as its reader needs: a batch of an agent from before
 * [perf] whole, or the summary of a BATCH_ENCODING_SUMMARY batch with its records read only
 * when asked (the accounting needs them only for a batch it cannot count from the summary).
 */
export type UplinkMessage =
  | { type: 'batch'; batch: UplinkBatch }
  | { type: 'summary'; summary: BatchSummary; records: () => Decoded<UplinkRecord[]> };

function gunzipLimited(data: Uint8Array, maxBytes: number): Decoded<Buffer> {
  try {
    return { ok: true, value: gunzipSync(data, { maxOutputLength: maxBytes }) };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ERR_BUFFER_TOO_LARGE') return bad(BadMessageReason.tooLarge, `decompresses to more than ${maxBytes} bytes`);
    return bad(BadMessageReason.notGzip, (err as Error).message);
  }
}

/**
 * UplinkRecordSchema's accept path written out by hand, for the records of every batch (zod's
 * per-object machinery was the largest share of the control plane's CPU per record): the
 * record as it is, or undefined when UplinkRecordSchema should word what is wrong.
 */
export function checkUplinkRecordFast(value: unknown): UplinkRecord | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const r = value as Record<string, unknown>;
  const { seq, deviceId, ts, receivedAtMs, deviceSeq, kind } = r;
  if (typeof seq !== 'number' || !Number.isInteger(seq) || seq <= 0) return undefined;
  if (typeof deviceId !== 'string' || !DEVICE_ID_PATTERN.test(deviceId)) return undefined;
  if (typeof ts !== 'number' || !Number.isInteger(ts) || typeof receivedAtMs !== 'number' || !Number.isInteger(receivedAtMs)) return undefined;
  if (deviceSeq !== undefined && (typeof deviceSeq !== 'number' || !Number.isInteger(deviceSeq) || deviceSeq < 0)) return undefined;
  if (typeof kind !== 'string' || kind.length === 0 || kind.length > 64) return undefined;
  return value as UplinkRecord;
}

/** The records of a summary batch: one JSON object per line, each inside the batch's seq range. */
function readRecordLines(summary: BatchSummary, recordsGz: Uint8Array, maxBytes: number): Decoded<UplinkRecord[]> {
  const text = gunzipLimited(recordsGz, maxBytes);
  if (!text.ok) return text;
  const lines = text.value.toString('utf8').split('\n');
  const records: UplinkRecord[] = [];
  for (let i = 0; i < lines.length; i++) {
    let value: unknown;
    try {
      value = JSON.parse(lines[i]!);
    } catch (err) {
      return bad(BadMessageReason.notJson, `record line ${i + 1}: ${(err as Error).message}`);
    }
    const record = checkUplinkRecordFast(value);
    if (record === undefined) {
      const result = UplinkRecordSchema.safeParse(value);
      if (!result.success) return bad(BadMessageReason.invalid, `record line ${i + 1}: ${issues(result.error)}`);
      records.push(result.data);
    } else records.push(record);
    const seq = records[records.length - 1]!.seq;
    if (seq < summary.firstSeq || seq > summary.lastSeq) return bad(BadMessageReason.seqOutOfRange, `record seq ${seq} outside [${summary.firstSeq}, ${summary.lastSeq}]`);
  }
  return { ok: true, value: records };
}

/**
 * Decodes one uplink message of either encoding (see UplinkMessage) on
 * `outpost.uplink.{agentId}.{lane}`, which must match the batch's own agentId and lane.
 */
export function decodeUplinkMessage(subject: string, encoding: string | undefined, data: Uint8Array, maxBytes: number): Decoded<UplinkMessage> {
  if (encoding !== BATCH_ENCODING_SUMMARY) {
    const batch = decodeUplinkBatch(subject, encoding, data, maxBytes);
    return batch.ok ? { ok: true, value: { type: 'batch', batch: batch.value } } : batch;
  }
  const parsed = parseAgentSubject(subject);
  if (parsed?.type !== 'uplink') return bad(BadMessageReason.unknownSubject, subject);
  const parts = splitSummaryBatch(data);
  if (parts === undefined) return bad(BadMessageReason.notGzip, 'not a summary batch: its framing is broken');
  const json = gunzipLimited(parts.summaryGz, maxBytes);
  if (!json.ok) return json;
  const value = parseJson(json.value);
  if (!value.ok) return value;
  const result = BatchSummarySchema.safeParse(value.value);
  if (!result.success) return bad(BadMessageReason.invalid, issues(result.error));
  const summary = result.data;
  if (summary.agentId !== parsed.agentId || summary.lane !== parsed.lane) {
    return bad(BadMessageReason.subjectMismatch, `batch of ${summary.agentId}/${summary.lane} on ${subject}`);
  }
  let records: Decoded<UplinkRecord[]> | undefined;
  return { ok: true, value: { type: 'summary', summary, records: () => (records ??= readRecordLines(summary, parts.recordsGz, maxBytes)) } };
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
