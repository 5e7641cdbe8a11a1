// Uplink batches and eviction reports into the accounting bucket: decode at the boundary,
// then one compare-and-set write per group of messages of one (agent, epoch, lane).
import {
  ACCOUNTING_BUCKET,
  ACCOUNTING_FAILURE_SUFFIX,
  AccountingFailureSchema,
  accountingFailureKey,
  accountingKey,
  ENCODING_HEADER,
  ErrorCode,
  isOutpostError,
  type AccountingFailure,
  type AccountingProblem,
  type EvictionReport,
  type Lane,
  type Logger,
  type UplinkRecord,
  OutpostError,
} from '@outpost/shared';
import type { ControlPlaneMetrics } from '../metrics.js';
import { createKvCasWriter, type Ackable, type CasModel, type GiveUp } from '../nats/kv-cas-writer.js';
import { decodeKvJson, encodeKvJson } from '../nats/kv-json.js';
import type { KvBucket, StreamMessage } from '../nats/types.js';
import {
  applyAccountingInput,
  createLaneAccounting,
  type AccountingDelta,
  type AccountingInput,
  type LaneAccounting,
} from './accounting.js';
import { fromAccountingValue, toAccountingValue } from './accounting-value.js';
import { decodeUplinkMessage } from './decode.js';

export interface AccountingIngestOptions {
  kv: KvBucket;
  metrics: ControlPlaneMetrics;
  logger: Logger;
  /** Decompressed batches above this are refused. */
  maxBatchBytes: number;
  /** Messages held unacked in this process before the consumer loop waits. */
  maxPending: number;
  now?: () => number;
  /** Pause before the n-th retry of a poisoned value or message (tests shorten it). */
  poisonRetryMs?: (attempt: number) => number;
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
    const { agentId, epoch, lane } = input.type === 'batch' ? input.batch : input.type === 'summary' ? input.summary : input.report;
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
          if (delta.deviceDuplicates > 0) metrics.deviceDuplicates.inc(delta.deviceDuplicates);
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
    onGiveUp: (event) => void recordGiveUp(event),
    poisonRetryMs: options.poisonRetryMs,
  });

  /** Counts, logs and records (for the API) messages of one key given up after retries. */
  async function recordGiveUp(event: GiveUp): Promise<void> {
    const [agentId = '', epoch = '', lane = ''] = event.key.split('.');
    metrics.accountingGivenUp.inc({ code: event.error.code }, event.messages);
    logger.error({ agentId, epoch, lane, code: event.error.code, err: event.error, messages: event.messages }, 'accounting gave up on uplink messages after retries; they are terminated and the agent is flagged');
    const key = accountingFailureKey(event.key);
    const nowMs = (options.now ?? Date.now)();
    try {
      const previous = await options.kv.get(key);
      const before = previous === undefined ? undefined : AccountingFailureSchema.safeParse(decodeKvJson(previous.value, key)).data;
      const failure: AccountingFailure = {
        v: 1,
        agentId,
        epoch,
        lane: lane as Lane,
        code: event.error.code,
        message: event.error.message.slice(0, 1_024),
        messages: (before?.messages ?? 0) + event.messages,
        firstAtMs: before?.firstAtMs ?? nowMs,
        lastAtMs: nowMs,
      };
      await options.kv.put(key, encodeKvJson(failure));
    } catch (err) {
      logger.warn({ err, agentId, key }, 'could not record the accounting failure in KV');
    }
  }

  return {
    handleUplinkMessage(message) {
      const decoded = decodeUplinkMessage(message.subject, message.header(ENCODING_HEADER), message.data, options.maxBatchBytes);
      if (!decoded.ok) {
        metrics.badMessages.inc({ stream: 'uplink', reason: decoded.reason });
        logger.warn({ subject: message.subject, streamSeq: message.streamSeq, reason: decoded.reason, detail: decoded.detail }, 'bad uplink batch refused');
        message.term(`${decoded.reason}: ${decoded.detail}`.slice(0, 256));
        return;
      }
      const uplink = decoded.value;
      if (uplink.type === 'batch') {
        const { batch } = uplink;
        writer.submit(accountingKey(batch.agentId, batch.epoch, batch.lane), { type: 'batch', batch, streamSeq: message.streamSeq }, message);
      } else {
        const { summary } = uplink;
        const records = (): UplinkRecord[] => {
          const read = uplink.records();
          if (!read.ok) throw new OutpostError(ErrorCode.ACCOUNTING_FAILED, `records of the summary batch ${summary.firstSeq}-${summary.lastSeq} do not decode: ${read.reason}: ${read.detail}`);
          return read.value;
        };
        writer.submit(accountingKey(summary.agentId, summary.epoch, summary.lane), { type: 'summary', summary, streamSeq: message.streamSeq, records }, message);
      }
      if (writer.pending() >= options.maxPending) return writer.belowLimit(options.maxPending);
    },
    submitEviction(report, message) {
      writer.submit(accountingKey(report.agentId, report.epoch, report.lane), { type: 'eviction', report }, message);
    },
    pending: () => writer.pending(),
    close: () => writer.close(),
  };
}

/** What KV holds of one agent: the accounting of each (epoch, lane), and what could not be counted. */
export interface AgentAccounting {
  lanes: LaneAccounting[];
  problems: AccountingProblem[];
}

/**
 * Every (epoch, lane) accounting of one agent, read from KV (what any replica wrote). A value
 * that does not decode, or a record of messages given up, becomes a problem of the agent
 * instead of failing the read: the other lanes still show.
 */
export async function readAgentAccounting(kv: KvBucket, agentId: string): Promise<AgentAccounting> {
  const keys = await kv.keys(`${agentId}.>`);
  const lanes: LaneAccounting[] = [];
  const problems: AccountingProblem[] = [];
  await Promise.all(
    keys.map(async (key) => {
      const entry = await kv.get(key);
      if (entry === undefined) return;
      const [, epoch = '', lane = '', suffix] = key.split('.');
      if (suffix === ACCOUNTING_FAILURE_SUFFIX) {
        const failure = AccountingFailureSchema.safeParse(safeDecode(entry.value, key));
        if (failure.success) {
          const f = failure.data;
          problems.push({ epoch: f.epoch, lane: f.lane, code: f.code, message: f.message, messages: f.messages, lastAtMs: f.lastAtMs });
        }
        return;
      }
      try {
        lanes.push(accountingModel.decode(key, entry.value));
      } catch (err) {
        const code = isOutpostError(err) ? err.code : ErrorCode.KV_VALUE_INVALID;
        problems.push({ epoch, lane, code, message: `${ACCOUNTING_BUCKET}/${key} revision ${entry.revision} is not a valid value: ${(err as Error).message}`.slice(0, 1_024) });
      }
    }),
  );
  lanes.sort((a, b) => a.epoch.localeCompare(b.epoch) || a.lane.localeCompare(b.lane));
  problems.sort((a, b) => a.epoch.localeCompare(b.epoch) || a.lane.localeCompare(b.lane) || a.code.localeCompare(b.code));
  return { lanes, problems };
}

function safeDecode(bytes: Uint8Array, key: string): unknown {
  try {
    return decodeKvJson(bytes, key);
  } catch {
    return undefined;
  }
}
