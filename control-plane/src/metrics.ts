import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The control plane's Prometheus metrics, on a registry of its own (not prom-client's global
 * one), so several control planes in one process (tests) never share counters.
 */
export function createControlPlaneMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'outpost_cp_' });
  return {
    registry,
    batches: new Counter({
      name: 'outpost_cp_uplink_batches_total',
      help: 'Uplink batches applied to the accounting (written to KV and acked)',
      registers: [registry],
    }),
    records: new Counter({
      name: 'outpost_cp_uplink_records_total',
      help: 'Uplink records counted once (new agent seqs)',
      labelNames: ['lane'] as const,
      registers: [registry],
    }),
    duplicates: new Counter({
      name: 'outpost_cp_uplink_duplicate_records_total',
      help: 'Uplink records whose agent seq had already been counted',
      labelNames: ['lane'] as const,
      registers: [registry],
    }),
    redelivered: new Counter({
      name: 'outpost_cp_redelivered_messages_total',
      help: 'Messages already applied (their ack was lost), acked without counting',
      registers: [registry],
    }),
    badMessages: new Counter({
      name: 'outpost_cp_bad_messages_total',
      help: 'Messages refused (terminated, never redelivered), by stream and reason',
      labelNames: ['stream', 'reason'] as const,
      registers: [registry],
    }),
    evictionReports: new Counter({
      name: 'outpost_cp_eviction_reports_total',
      help: 'Eviction reports applied (each report id counted once)',
      registers: [registry],
    }),
    evictedRecords: new Counter({
      name: 'outpost_cp_evicted_records_total',
      help: 'Records agents reported evicted',
      registers: [registry],
    }),
    heartbeats: new Counter({
      name: 'outpost_cp_heartbeats_total',
      help: 'Heartbeats applied to the fleet registry',
      registers: [registry],
    }),
    kvConflicts: new Counter({
      name: 'outpost_cp_kv_conflicts_total',
      help: 'Compare-and-set writes that lost to another writer (re-read and retried)',
      labelNames: ['bucket'] as const,
      registers: [registry],
    }),
    kvWriteErrors: new Counter({
      name: 'outpost_cp_kv_write_errors_total',
      help: 'KV reads or writes that failed for another reason than a conflict (retried)',
      labelNames: ['bucket'] as const,
      registers: [registry],
    }),
    natsConnected: new Gauge({
      name: 'outpost_cp_nats_connected',
      help: '1 while connected to NATS',
      registers: [registry],
    }),
  };
}

export type ControlPlaneMetrics = ReturnType<typeof createControlPlaneMetrics>;
