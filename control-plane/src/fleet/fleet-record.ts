// The fleet registry's pure core: how a heartbeat changes an agent's record, and how a record
// reads (online, degraded, offline) at a given time. Status is never stored: it depends on now.
import {
  AgentStatus,
  FleetRecordSchema,
  StatusReason,
  type AgentSummary,
  type ControlPlaneFleetConfig,
  type FleetRecord,
  type Heartbeat,
} from '@outpost/shared';

export interface HeartbeatInput {
  heartbeat: Heartbeat;
  /** When NATS stored it (server clock), epoch ms: immune to the agent's clock. */
  storedAtMs: number;
}

/**
 * Applies a heartbeat to an agent's record in place (`record` undefined: first heartbeat).
 * A heartbeat stored before the newest one applied (redelivered, or consumed out of order)
 * changes nothing, so an old backlog never rolls labels or versions back nor makes an agent
 * look recently seen. Returns the record, or undefined when nothing changed.
 */
export function applyHeartbeat(record: FleetRecord | undefined, input: HeartbeatInput): FleetRecord | undefined {
  const { heartbeat, storedAtMs } = input;
  if (record === undefined) {
    return { v: 1, agentId: heartbeat.agentId, heartbeat, firstSeenMs: storedAtMs, lastSeenMs: storedAtMs, heartbeats: 1, restarts: 0 };
  }
  if (storedAtMs <= record.lastSeenMs) return undefined;
  // A process start time other than the last one seen: the agent restarted in between.
  const before = record.heartbeat.startedAtMs;
  if (before !== undefined && heartbeat.startedAtMs !== undefined && heartbeat.startedAtMs !== before) {
    record.restarts = (record.restarts ?? 0) + 1;
    record.lastRestartMs = storedAtMs;
  }
  record.heartbeat = heartbeat;
  record.lastSeenMs = storedAtMs;
  record.firstSeenMs = Math.min(record.firstSeenMs, storedAtMs);
  record.heartbeats += 1;
  return record;
}

/** @throws ZodError when a stored record does not match FleetRecordSchema. */
export function parseFleetRecord(value: unknown): FleetRecord {
  return FleetRecordSchema.parse(value);
}

export type StatusThresholds = Pick<ControlPlaneFleetConfig, 'offlineAfterMs' | 'degradedBufferAgeMs' | 'degradedBufferFillRatio'>;

/** How an agent reads at `nowMs`: offline after `offlineAfterMs` without a heartbeat; degraded when online but unwell. */
export function agentStatus(record: FleetRecord, nowMs: number, thresholds: StatusThresholds): { status: AgentStatus; reasons: StatusReason[] } {
  if (nowMs - record.lastSeenMs > thresholds.offlineAfterMs) return { status: AgentStatus.offline, reasons: [StatusReason.heartbeatMissed] };
  const reasons: StatusReason[] = [];
  const { buffer, inference } = record.heartbeat;
  if (buffer.oldestRecordAgeMs !== undefined && buffer.oldestRecordAgeMs > thresholds.degradedBufferAgeMs) reasons.push(StatusReason.bufferBacklog);
  if (buffer.bytes > thresholds.degradedBufferFillRatio * buffer.maxBytes) reasons.push(StatusReason.bufferNearlyFull);
  if (inference?.up === false) reasons.push(StatusReason.inferenceDown);
  if (buffer.storageOk === false) reasons.push(StatusReason.storageFailing);
  return { status: reasons.length > 0 ? AgentStatus.degraded : AgentStatus.online, reasons };
}

/** The API view of an agent; `record` undefined: data arrived but never a heartbeat. */
export function toAgentSummary(agentId: string, record: FleetRecord | undefined, nowMs: number, thresholds: StatusThresholds): AgentSummary {
  if (record === undefined) {
    return {
      agentId,
      status: AgentStatus.unknown,
      reasons: [StatusReason.noHeartbeat],
      labels: {},
      epoch: null,
      versions: null,
      firstSeenMs: null,
      lastSeenMs: null,
      buffer: null,
      ingest: null,
      inference: null,
      startedAtMs: null,
      restarts: 0,
      desired: null,
    };
  }
  const hb = record.heartbeat;
  return {
    agentId,
    ...agentStatus(record, nowMs, thresholds),
    labels: hb.labels,
    epoch: hb.epoch,
    versions: hb.versions,
    firstSeenMs: record.firstSeenMs,
    lastSeenMs: record.lastSeenMs,
    buffer: hb.buffer,
    ingest: hb.ingest,
    inference: hb.inference ?? null,
    startedAtMs: hb.startedAtMs ?? null,
    restarts: record.restarts ?? 0,
    desired: hb.desired ?? null,
  };
}
