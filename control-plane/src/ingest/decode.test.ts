import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { BATCH_ENCODING, BATCH_ENCODING_SUMMARY, evictionSubject, frameSummaryBatch, heartbeatSubject, uplinkSubject, type UplinkBatch } from '@outpost/shared';
import { BadMessageReason, decodeAgentEvent, decodeUplinkBatch, decodeUplinkMessage } from './decode.js';

const MAX = 1024 * 1024;
const batch: UplinkBatch = {
  agentId: 'gw-1',
  epoch: 'epoch0001',
  lane: 'telemetry',
  firstSeq: 1,
  lastSeq: 2,
  records: [1, 2].map((seq) => ({ seq, deviceId: 'd1', ts: 1, receivedAtMs: 2, kind: 'telemetry', body: { ts: 1, metrics: { t: 1 } } })),
};
const gz = (value: unknown): Uint8Array => gzipSync(Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)));
const subject = uplinkSubject('gw-1', 'telemetry');

describe('decodeUplinkBatch', () => {
  it('decodes a gzip+json batch on its own subject', () => {
    expect(decodeUplinkBatch(subject, BATCH_ENCODING, gz(batch), MAX)).toEqual({ ok: true, value: batch });
  });

  it.each([
    ['another subject', 'outpost.other.gw-1.telemetry', BATCH_ENCODING, gz(batch), BadMessageReason.unknownSubject],
    ['no encoding header', subject, undefined, gz(batch), BadMessageReason.unsupportedEncoding],
    ['not gzip', subject, BATCH_ENCODING, Buffer.from(JSON.stringify(batch)), BadMessageReason.notGzip],
    ['gzip of bad JSON', subject, BATCH_ENCODING, gz('{"agentId": '), BadMessageReason.notJson],
    ['a batch without records', subject, BATCH_ENCODING, gz({ ...batch, records: [] }), BadMessageReason.invalid],
    ['a batch of another agent', uplinkSubject('gw-2', 'telemetry'), BATCH_ENCODING, gz(batch), BadMessageReason.subjectMismatch],
    ['a batch of another lane', uplinkSubject('gw-1', 'events'), BATCH_ENCODING, gz(batch), BadMessageReason.subjectMismatch],
    ['a record outside [firstSeq, lastSeq]', subject, BATCH_ENCODING, gz({ ...batch, lastSeq: 1 }), BadMessageReason.seqOutOfRange],
  ])('refuses %s', (_name, subj, encoding, data, reason) => {
    const result = decodeUplinkBatch(subj, encoding, data, MAX);
    expect(result).toMatchObject({ ok: false, reason });
  });

  it('refuses a batch that decompresses beyond the bound (gzip bomb)', () => {
    expect(decodeUplinkBatch(subject, BATCH_ENCODING, gzipSync(Buffer.alloc(4 * MAX, 32)), MAX)).toMatchObject({ ok: false, reason: BadMessageReason.tooLarge });
  });
});

describe('decodeAgentEvent', () => {
  const heartbeat = {
    agentId: 'gw-1',
    epoch: 'epoch0001',
    ts: 1,
    labels: { site: 'a' },
    versions: { agent: '0.1.0' },
    buffer: { records: { events: 0, telemetry: 3 }, bytes: 10, maxBytes: 100, evictedRecords: { events: 0, telemetry: 0 } },
    ingest: { accepted: 3, rejected: 0, devicesConnected: 1 },
  };
  const report = { id: 1, agentId: 'gw-1', epoch: 'epoch0001', lane: 'telemetry', firstSeq: 1, lastSeq: 2, records: 2, bytes: 20, byDevice: { d1: 2 }, atMs: 5 };
  const json = (v: unknown) => Buffer.from(JSON.stringify(v));

  it('decodes heartbeats and eviction reports', () => {
    expect(decodeAgentEvent(heartbeatSubject('gw-1'), json(heartbeat))).toEqual({ ok: true, value: { type: 'heartbeat', heartbeat } });
    expect(decodeAgentEvent(evictionSubject('gw-1'), json(report))).toEqual({ ok: true, value: { type: 'eviction', report } });
  });

  it('refuses an agent speaking for another one, bad JSON and bad shapes', () => {
    expect(decodeAgentEvent(heartbeatSubject('gw-2'), json(heartbeat))).toMatchObject({ ok: false, reason: BadMessageReason.subjectMismatch });
    expect(decodeAgentEvent(evictionSubject('gw-2'), json(report))).toMatchObject({ ok: false, reason: BadMessageReason.subjectMismatch });
    expect(decodeAgentEvent(heartbeatSubject('gw-1'), Buffer.from('{'))).toMatchObject({ ok: false, reason: BadMessageReason.notJson });
    expect(decodeAgentEvent(evictionSubject('gw-1'), json({ ...report, lastSeq: 0 }))).toMatchObject({ ok: false, reason: BadMessageReason.invalid });
    expect(decodeAgentEvent(evictionSubject('gw-1'), json({ ...report, firstSeq: 3 }))).toMatchObject({ ok: false, reason: BadMessageReason.invalid });
    expect(decodeAgentEvent(uplinkSubject('gw-1', 'telemetry'), json(heartbeat))).toMatchObject({ ok: false, reason: BadMessageReason.unknownSubject });
  });
});

describe('decodeUplinkMessage', () => {
  const summary = { agentId: 'gw-1', epoch: 'epoch0001', lane: 'telemetry', firstSeq: 1, lastSeq: 2, seqs: [[1, 2]], devices: [{ deviceId: 'd1', kinds: [['telemetry', 2]] }] };
  const lines = batch.records.map((r) => JSON.stringify(r)).join('\n');
  const framed = (s: unknown, records = lines): Uint8Array => frameSummaryBatch(gz(s), gz(records));

  it('reads a batch of an agent from before [perf] whole, and a summary batch as its summary, its records only when asked', () => {
    expect(decodeUplinkMessage(subject, BATCH_ENCODING, gz(batch), MAX)).toEqual({ ok: true, value: { type: 'batch', batch } });
    const decoded = decodeUplinkMessage(subject, BATCH_ENCODING_SUMMARY, framed(summary), MAX);
    expect(decoded.ok && decoded.value.type === 'summary' && decoded.value.summary).toEqual(summary);
    expect(decoded.ok && decoded.value.type === 'summary' && decoded.value.records()).toEqual({ ok: true, value: batch.records });
  });

  it.each([
    ['broken framing', subject, Buffer.from([0, 0, 0, 9, 1]), BadMessageReason.notGzip],
    ['a summary of another agent', uplinkSubject('gw-2', 'telemetry'), framed(summary), BadMessageReason.subjectMismatch],
    ['counts by kind that do not add up to its seqs', subject, framed({ ...summary, seqs: [[1, 3]], lastSeq: 3 }), BadMessageReason.invalid],
    ['seqs outside the batch', subject, framed({ ...summary, seqs: [[1, 2]], lastSeq: 1 }), BadMessageReason.invalid],
  ])('refuses %s', (_what, subj, data, reason) => {
    expect(decodeUplinkMessage(subj, BATCH_ENCODING_SUMMARY, data, MAX)).toMatchObject({ ok: false, reason });
  });

  it('refuses records that do not decode when they are read, with the line that is wrong', () => {
    const bad = decodeUplinkMessage(subject, BATCH_ENCODING_SUMMARY, framed(summary, `${JSON.stringify(batch.records[0])}\n{"seq":2,"deviceId":"not a device id!"}`), MAX);
    expect(bad.ok && bad.value.type === 'summary' && bad.value.records()).toMatchObject({ ok: false, reason: BadMessageReason.invalid, detail: expect.stringMatching(/^record line 2/) });
    const outside = decodeUplinkMessage(subject, BATCH_ENCODING_SUMMARY, framed(summary, JSON.stringify({ ...batch.records[0], seq: 9 })), MAX);
    expect(outside.ok && outside.value.type === 'summary' && outside.value.records()).toMatchObject({ ok: false, reason: BadMessageReason.seqOutOfRange });
  });
});
