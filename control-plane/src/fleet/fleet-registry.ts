// The fleet registry: one KV value per agent in FLEET_BUCKET, upserted from heartbeats with
// compare-and-set, and an in-memory view of the whole bucket (kept by a KV watch, so it shows
// what every replica wrote) for listing the fleet without a read per agent.
import { FLEET_BUCKET, type FleetRecord, type Logger } from '@outpost/shared';
import type { ControlPlaneMetrics } from '../metrics.js';
import { createKvCasWriter, type Ackable, type CasModel } from '../nats/kv-cas-writer.js';
import { decodeKvJson, encodeKvJson } from '../nats/kv-json.js';
import type { KvBucket, KvWatch } from '../nats/types.js';
import { applyHeartbeat, parseFleetRecord, type HeartbeatInput } from './fleet-record.js';

interface FleetState {
  record: FleetRecord | undefined;
}

const decodeRecord = (key: string, bytes: Uint8Array): FleetRecord => parseFleetRecord(decodeKvJson(bytes, `${FLEET_BUCKET}/${key}`));

const fleetModel: CasModel<FleetState, HeartbeatInput, 'heartbeat'> = {
  empty: () => ({ record: undefined }),
  decode: (key, bytes) => ({ record: decodeRecord(key, bytes) }),
  encode: (state) => encodeKvJson(state.record),
  apply(state, input) {
    const record = applyHeartbeat(state.record, input);
    if (record === undefined) return undefined;
    state.record = record;
    return 'heartbeat';
  },
};

export interface FleetRegistryOptions {
  kv: KvBucket;
  metrics: ControlPlaneMetrics;
  logger: Logger;
  now?: () => number;
}

export interface FleetRegistry {
  /** Starts the watch that fills the view. */
  start(): Promise<void>;
  /** Queues a validated heartbeat; `message` is acked once it is written. */
  submitHeartbeat(input: HeartbeatInput, message: Ackable): void;
  /** Every agent in the view, by agent id. */
  list(): FleetRecord[];
  /** One agent, read from KV. */
  get(agentId: string): Promise<FleetRecord | undefined>;
  pending(): number;
  close(): Promise<void>;
}

export function createFleetRegistry(options: FleetRegistryOptions): FleetRegistry {
  const { kv, metrics, logger } = options;
  const view = new Map<string, { record: FleetRecord; revision: number }>();
  const remember = (agentId: string, record: FleetRecord, revision: number): void => {
    const known = view.get(agentId);
    if (known === undefined || known.revision < revision) view.set(agentId, { record, revision });
  };
  let watch: KvWatch | undefined;

  const writer = createKvCasWriter({
    kv,
    model: fleetModel,
    logger,
    now: options.now,
    onCommit(agentId, state, revision, deltas) {
      if (deltas.length > 0) metrics.heartbeats.inc(deltas.length);
      // A copy: the writer keeps changing its cached state in place.
      if (state.record !== undefined) remember(agentId, structuredClone(state.record), revision);
    },
    onConflict: () => metrics.kvConflicts.inc({ bucket: FLEET_BUCKET }),
    onWriteError: () => metrics.kvWriteErrors.inc({ bucket: FLEET_BUCKET }),
  });

  return {
    async start() {
      watch = await kv.watch((change) => {
        if (change.type === 'delete') {
          view.delete(change.key);
          return;
        }
        try {
          remember(change.key, decodeRecord(change.key, change.entry.value), change.entry.revision);
        } catch (err) {
          logger.warn({ err, key: change.key }, 'unreadable fleet record ignored');
        }
      });
    },
    submitHeartbeat: (input, message) => writer.submit(input.heartbeat.agentId, input, message),
    list: () => [...view.values()].map((v) => v.record).sort((a, b) => a.agentId.localeCompare(b.agentId)),
    async get(agentId) {
      const entry = await kv.get(agentId);
      if (entry === undefined) return undefined;
      const record = decodeRecord(agentId, entry.value);
      remember(agentId, record, entry.revision);
      return record;
    },
    pending: () => writer.pending(),
    async close() {
      watch?.stop();
      await writer.close();
    },
  };
}
