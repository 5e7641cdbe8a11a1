import { gunzipSync } from 'node:zlib';
import { connect } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { BATCH_ENCODING_SUMMARY, BatchSummarySchema, ENCODING_HEADER, splitSummaryBatch, UPLINK_STREAM, UplinkBatchSchema, type UplinkBatch, type UplinkRecord } from '@outpost/shared';
import type { NatsServer } from './nats-server.js';

export interface StreamRecord extends UplinkRecord {
  agentId: string;
  epoch: string;
  lane: string;
}

/**
 * Reads the whole uplink stream (the log of record) as a test would replay it into another
 * store: every batch, decompressed and validated, in stream order, duplicates included.
 */
export async function readUplinkStream(nats: string | NatsServer): Promise<StreamRecord[]> {
  const nc = await connect(typeof nats === 'string' ? { servers: nats } : nats.clientOptions());
  try {
    const js = jetstream(nc);
    const consumer = await js.consumers.get(UPLINK_STREAM); // ordered, ephemeral
    const records: StreamRecord[] = [];
    const info = await consumer.info();
    let pending = info.num_pending;
    if (pending === 0) return records;
    const messages = await consumer.consume();
    for await (const m of messages) {
      const batch = decodeStoredBatch(m.data, m.headers?.get(ENCODING_HEADER));
      for (const r of batch.records) records.push({ ...r, agentId: batch.agentId, epoch: batch.epoch, lane: batch.lane });
      if (--pending === 0) break;
    }
    return records;
  } finally {
    await nc.close();
  }
}

/** A stored uplink message as one validated batch, whichever encoding its agent used. */
export function decodeStoredBatch(data: Uint8Array, encoding: string | undefined): UplinkBatch {
  if (encoding !== BATCH_ENCODING_SUMMARY) return UplinkBatchSchema.parse(JSON.parse(gunzipSync(data).toString('utf8')));
  const parts = splitSummaryBatch(data);
  if (parts === undefined) throw new Error('uplink message: broken summary framing');
  const { agentId, epoch, lane, firstSeq, lastSeq } = BatchSummarySchema.parse(JSON.parse(gunzipSync(parts.summaryGz).toString('utf8')));
  const records = gunzipSync(parts.recordsGz)
    .toString('utf8')
    .split('\n')
    .map((line) => JSON.parse(line) as unknown);
  return UplinkBatchSchema.parse({ agentId, epoch, lane, firstSeq, lastSeq, records });
}

/**
 * Per device, the device seqs in agent-seq order with duplicate agent seqs dropped: what an
 * operator replaying the log sees. Order is kept when each list is strictly increasing.
 */
export function deviceSeqsInAgentOrder(records: readonly StreamRecord[], lane = 'telemetry'): Map<string, number[]> {
  const bySeq = new Map<string, StreamRecord>();
  for (const r of records) if (r.lane === lane) bySeq.set(`${r.agentId}:${r.epoch}:${r.seq}`, r);
  const sorted = [...bySeq.values()].sort((a, b) => (a.epoch === b.epoch ? a.seq - b.seq : a.epoch < b.epoch ? -1 : 1));
  const out = new Map<string, number[]>();
  for (const r of sorted) {
    if (r.deviceSeq === undefined) continue;
    const list = out.get(r.deviceId) ?? [];
    list.push(r.deviceSeq);
    out.set(r.deviceId, list);
  }
  return out;
}
