import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Seconds; API answers are expected in milliseconds, a scrape of a big fleet in about a second. */
const HTTP_DURATION_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

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
    deviceDuplicates: new Counter({
      name: 'outpost_cp_device_duplicates_total',
      help: 'Device messages that arrived again (same device, seq and ts: a resend after a lost acknowledgement), counted once',
      registers: [registry],
    }),
    accountingGivenUp: new Counter({
      name: 'outpost_cp_accounting_given_up_messages_total',
      help: 'Uplink messages terminated after retries because their accounting value does not decode or applying them failed, by error code',
      labelNames: ['code'] as const,
      registers: [registry],
    }),
    desiredWrites: new Counter({
      name: 'outpost_cp_desired_state_writes_total',
      help: 'Desired states written for agents by rollouts (each followed by a notice to the agent)',
      registers: [registry],
    }),
    rolloutSteps: new Counter({
      name: 'outpost_cp_rollout_steps_total',
      help: 'Rollout steps this replica wrote (a lost compare-and-set is not counted), by action',
      labelNames: ['action'] as const,
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
    consumerPending: new Gauge({
      name: 'outpost_cp_consumer_pending_messages',
      help: 'Messages of a durable consumer not yet delivered (pending) or delivered and not yet acked (ack_pending), polled',
      labelNames: ['consumer', 'state'] as const,
      registers: [registry],
    }),
    httpRequestDuration: new Histogram({
      name: 'outpost_cp_http_request_duration_seconds',
      help: 'HTTP API requests by method, route pattern (unmatched: no route) and status code; an event stream counts until its headers are sent',
      labelNames: ['method', 'route', 'status'] as const,
      buckets: HTTP_DURATION_BUCKETS_S,
      registers: [registry],
    }),
    sseClients: new Gauge({
      name: 'outpost_cp_sse_clients',
      help: 'Open GET /api/events streams on this replica',
      registers: [registry],
    }),
    sseDroppedClients: new Counter({
      name: 'outpost_cp_sse_dropped_clients_total',
      help: 'Event-stream clients disconnected because they did not keep up (their queue was full)',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    liveRecords: new Counter({
      name: 'outpost_cp_live_records_total',
      help: 'Uplink records read into the live view of this replica (every replica reads all), by kind',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    liveTailPending: new Gauge({
      name: 'outpost_cp_live_tail_pending_messages',
      help: 'Uplink messages the live view of a lane has still to read (0: caught up)',
      labelNames: ['lane'] as const,
      registers: [registry],
    }),
    liveDevices: new Gauge({
      name: 'outpost_cp_live_devices',
      help: 'Devices with data in the recent window of this replica',
      registers: [registry],
    }),
    liveAnomalies: new Gauge({
      name: 'outpost_cp_live_anomalies',
      help: 'Anomalies kept for GET /api/anomalies on this replica',
      registers: [registry],
    }),
    auditEntries: new Counter({
      name: 'outpost_cp_audit_entries_total',
      help: 'Audit entries of mutating API calls stored in the audit stream by this replica',
      registers: [registry],
    }),
    auditWriteFailures: new Counter({
      name: 'outpost_cp_audit_write_failures_total',
      help: 'Audit entries this replica could not store in the audit stream after retries (each logged as an error with the entry)',
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
