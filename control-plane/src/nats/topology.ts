// The streams, consumers and buckets the control plane declares at start (create-or-verify,
// so replicas starting together all succeed). Names come from the shared contract.
import {
  ACCOUNTING_BUCKET,
  AGENT_EVENTS_STREAM,
  AGENT_EVENTS_SUBJECTS,
  AUDIT_STREAM,
  AUDIT_SUBJECT,
  DESIRED_BUCKET,
  FLEET_BUCKET,
  MODEL_STORE_BUCKET,
  ROLLOUTS_BUCKET,
  UPLINK_STREAM,
  UPLINK_SUBJECTS,
  type ControlPlaneConfig,
  type Lane,
} from '@outpost/shared';
import type { ConsumerSpec, KvSpec, NatsClient, ObjectStoreSpec, StreamSpec } from './types.js';

/** Durable consumer of OUTPOST_UPLINK shared by all replicas: each batch goes to one replica at a time. */
export const UPLINK_CONSUMER = 'cp-uplink';
/** Durable consumer of OUTPOST_AGENT_EVENTS shared by all replicas. */
export const AGENT_EVENTS_CONSUMER = 'cp-agent-events';

export interface Topology {
  uplinkStream: StreamSpec;
  agentEventsStream: StreamSpec;
  /** The audit log of mutating API calls (read back by GET /api/audit, no consumer of its own). */
  auditStream: StreamSpec;
  uplinkConsumer: ConsumerSpec;
  agentEventsConsumer: ConsumerSpec;
  fleetBucket: KvSpec;
  accountingBucket: KvSpec;
  desiredBucket: KvSpec;
  rolloutsBucket: KvSpec;
  modelStore: ObjectStoreSpec;
}

export function topologyFor(config: ControlPlaneConfig): Topology {
  const { streams, ingest } = config;
  const consumer = (stream: string, durable: string, description: string): ConsumerSpec => ({
    stream,
    durable,
    description,
    ackWaitMs: ingest.ackWaitMs,
    maxAckPending: ingest.maxAckPending,
  });
  return {
    uplinkStream: {
      name: UPLINK_STREAM,
      subjects: [UPLINK_SUBJECTS],
      maxAgeMs: streams.uplinkMaxAgeMs,
      maxBytes: streams.uplinkMaxBytes,
      duplicateWindowMs: streams.duplicateWindowMs,
      replicas: streams.replicas,
    },
    agentEventsStream: {
      name: AGENT_EVENTS_STREAM,
      subjects: [AGENT_EVENTS_SUBJECTS],
      maxAgeMs: streams.agentEventsMaxAgeMs,
      duplicateWindowMs: streams.duplicateWindowMs,
      replicas: streams.replicas,
    },
    auditStream: {
      name: AUDIT_STREAM,
      subjects: [AUDIT_SUBJECT],
      maxAgeMs: streams.auditMaxAgeMs,
      maxBytes: streams.auditMaxBytes,
      // Each entry carries a Nats-Msg-Id, so a write retried after a lost ack is stored once.
      duplicateWindowMs: streams.duplicateWindowMs,
      replicas: streams.replicas,
    },
    uplinkConsumer: consumer(UPLINK_STREAM, UPLINK_CONSUMER, 'control plane: uplink batches into the accounting'),
    agentEventsConsumer: consumer(AGENT_EVENTS_STREAM, AGENT_EVENTS_CONSUMER, 'control plane: heartbeats and eviction reports'),
    fleetBucket: { bucket: FLEET_BUCKET, description: 'Outpost fleet registry, key = agentId', replicas: streams.replicas },
    accountingBucket: { bucket: ACCOUNTING_BUCKET, description: 'Outpost accounting, key = agentId.epoch.lane', replicas: streams.replicas },
    desiredBucket: { bucket: DESIRED_BUCKET, description: 'Outpost desired state per agent, key = agentId', replicas: streams.replicas },
    rolloutsBucket: { bucket: ROLLOUTS_BUCKET, description: 'Outpost rollouts, key = rollout id', replicas: streams.replicas },
    modelStore: { bucket: MODEL_STORE_BUCKET, description: 'Outpost signed model artifacts: name/version/model.onnx and manifest.json', replicas: streams.replicas },
  };
}

/** Declares the streams and the consumers of the uplink and agent events (idempotent). */
export async function declareStreams(nats: NatsClient, topology: Topology): Promise<void> {
  await Promise.all([nats.ensureStream(topology.uplinkStream), nats.ensureStream(topology.agentEventsStream), nats.ensureStream(topology.auditStream)]);
  await Promise.all([nats.ensureConsumer(topology.uplinkConsumer), nats.ensureConsumer(topology.agentEventsConsumer)]);
}

/**
 * Subject filter of one lane of every agent's uplink: `outpost.uplink.*.events`. Built from
 * the shared UPLINK_SUBJECTS (`outpost.uplink.>`), so it follows the contract.
 */
export function uplinkLaneFilter(lane: Lane): string {
  return `${UPLINK_SUBJECTS.slice(0, -'>'.length)}*.${lane}`;
}
