// Uplink batches and eviction reports into the accounting bucket: decode at the boundary,
// then one compare-and-set write per group of messages of one (agent, epoch, lane).
import { accountingKey, ACCOUNTING_BUCKET, ENCODING_HEADER, type EvictionReport, type Logger } from '@outpost/shared';
import type { ControlPlaneMetrics } from '../metrics.js';
import { createKvCasWriter, type Ackable, type CasModel } from '../nats/kv-cas-writer.js';
import { decodeKvJson, encodeKvJson } from '../nats/kv-json.js';
import type { KvBucket, StreamMessage } from '../nats/types.js';
import {
  applyAccountingInput,
  createLaneAccounting,
  fromAccountingValue,
  toAccountingValue,
  type AccountingDelta,
  type AccountingInput,
  type LaneAccounting,
} from './accounting.js';
import { decodeUplinkBatch } from './decode.js';

export interface AccountingIngestOptions {
  kv: KvBucket;
  metrics: ControlPlaneMetrics;
  logger: Logger;
  /** Decompressed batches above this are refused. */
  maxBatchBytes: number;
  /** Messages held unacked in this process before the consumer loop waits. */
  maxPending: number;
  now?: () => number;
}

export interface AccountingIngest {
  /** Handler of the uplink consumer: a bad batch is terminated, a good one queued for its key. */
  handleUplinkMessage(message: StreamMessage): void | Promise<void>;
  /** Queues a validated eviction report; `message` is acked once it is written. */
  submitEviction(report: EvictionReport, message: Ackable): void;
  pending(): number;
  close(): Promise<void>;
}

export const accountingModel: CasModel<LaneAccounting, AccountingInput, AccountingDelta> = {
  empty(_key, input) {
    const { agentId, epoch, lane } = input.type === 'batch' ? input.batch : input.report;
    return createLaneAccounting(agentId, epoch, lane);
  },
  decode: (key, bytes) => fromAccountingValue(decodeKvJson(bytes, `${ACCOUNTING_BUCKET}/${key}`)),
  encode: (acc) => encodeKvJson(toAccountingValue(acc)),
  apply: applyAccountingInput,
};

export function createAccountingIngest(options: AccountingIngestOptions): AccountingIngest {
  const { metrics, logger } = options;
  const writer = createKvCasWriter({
    kv: options.kv,
    model: accountingModel,
    logger,
    now: options.now,
    onCommit(_key, acc, _revision, deltas, messages) {
      let applied = 0;
      for (const delta of deltas) {
        if (delta.type === 'batch') {
          applied++;
          metrics.batches.inc();
          metrics.records.inc({ lane: acc.lane }, delta.records);
          if (delta.duplicates > 0) metrics.duplicates.inc({ lane: acc.lane }, delta.duplicates);
        } else {
          applied++;
          metrics.evictionReports.inc();
          metrics.evictedRecords.inc(delta.records);
        }
      }
      if (messages > applied) metrics.redelivered.inc(messages - applied);
    },
    onConflict: () => metrics.kvConflicts.inc({ bucket: ACCOUNTING_BUCKET }),
    onWriteError: () => metrics.kvWriteErrors.inc({ bucket: ACCOUNTING_BUCKET }),
  });

  return {
    handleUplinkMessage(message) {
      const decoded = decodeUplinkBatch(message.subject, message.header(ENCODING_HEADER), message.data, options.maxBatchBytes);
      if (!decoded.ok) {
        metrics.badMessages.inc({ stream: 'uplink', reason: decoded.reason });
        logger.warn({ subject: message.subject, streamSeq: message.streamSeq, reason: decoded.reason, detail: decoded.detail }, 'bad uplink batch refused');
        message.term(`${decoded.reason}: ${decoded.detail}`.slice(0, 256));
        return;
      }
      const batch = decoded.value;
      writer.submit(accountingKey(batch.agentId, batch.epoch, batch.lane), { type: 'batch', batch, streamSeq: message.streamSeq }, message);
      if (writer.pending() >= options.maxPending) return writer.belowLimit(options.maxPending);
    },
    submitEviction(report, message) {
      writer.submit(accountingKey(report.agentId, report.epoch, report.lane), { type: 'eviction', report }, message);
    },
    pending: () => writer.pending(),
    close: () => writer.close(),
  };
}

/** Every (epoch, lane) accounting of one agent, read from KV (what any replica wrote). */
export async function readAgentAccounting(kv: KvBucket, agentId: string): Promise<LaneAccounting[]> {
  const keys = await kv.keys(`${agentId}.>`);
  const values = await Promise.all(
    keys.map(async (key) => {
      const entry = await kv.get(key);
      return entry === undefined ? undefined : accountingModel.decode(key, entry.value);
    }),
  );
  return values.filter((v): v is LaneAccounting => v !== undefined).sort((a, b) => a.epoch.localeCompare(b.epoch) || a.lane.localeCompare(b.lane));
}
