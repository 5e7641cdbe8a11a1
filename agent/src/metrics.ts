import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The agent's Prometheus metrics, on a registry of its own (not prom-client's global one), so
 * several agents in one process (tests, the fleet simulator) never share counters.
 */
export function createAgentMetrics(labels: { agentId: string }) {
  const registry = new Registry();
  registry.setDefaultLabels({ agent_id: labels.agentId });
  collectDefaultMetrics({ register: registry, prefix: 'outpost_agent_' });
  return {
    registry,
    accepted: new Counter({
      name: 'outpost_ingest_accepted_total',
      help: 'Device publishes committed to the outbox',
      registers: [registry],
    }),
    rejected: new Counter({
      name: 'outpost_ingest_rejected_total',
      help: 'Device publishes rejected, by reason (dead-lettered, refused or dropped)',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    deviceResends: new Counter({
      name: 'outpost_ingest_device_resends_total',
      help: 'Device publishes recognised as resends of a message already committed (same device, seq and ts): acknowledged again, stored once',
      registers: [registry],
    }),
    ratePauses: new Counter({
      name: 'outpost_ingest_rate_limit_pauses_total',
      help: 'Times a device over its rate was read more slowly (its QoS 1/2 publishes held in TCP buffers)',
      registers: [registry],
    }),
    ratePausedSeconds: new Counter({
      name: 'outpost_ingest_rate_limit_paused_seconds_total',
      help: 'Time devices over their rate spent paused, summed over devices',
      registers: [registry],
    }),
    storageFailures: new Counter({
      name: 'outpost_ingest_storage_failures_total',
      help: 'Publishes left unacknowledged because the outbox could not commit them (the device resends)',
      registers: [registry],
    }),
    authRefused: new Counter({
      name: 'outpost_broker_auth_refused_total',
      help: 'Connections refused at CONNECT, by CONNACK return code',
      labelNames: ['code'] as const,
      registers: [registry],
    }),
    aclDenied: new Counter({
      name: 'outpost_broker_acl_denied_total',
      help: 'Publishes or subscriptions outside the device topic prefix',
      labelNames: ['action'] as const,
      registers: [registry],
    }),
    guardClosed: new Counter({
      name: 'outpost_broker_packet_guard_closed_total',
      help: 'Connections closed by the packet guard before the packet was buffered',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    clientsConnected: new Gauge({
      name: 'outpost_broker_clients_connected',
      help: 'MQTT clients connected to the embedded broker',
      registers: [registry],
    }),
    uplinkRecords: new Counter({
      name: 'outpost_uplink_records_total',
      help: 'Records acknowledged by JetStream and deleted from the outbox, per lane',
      labelNames: ['lane'] as const,
      registers: [registry],
    }),
    uplinkBatches: new Counter({
      name: 'outpost_uplink_batches_total',
      help: 'Batches published to JetStream (including resends), per lane',
      labelNames: ['lane'] as const,
      registers: [registry],
    }),
    uplinkDuplicates: new Counter({
      name: 'outpost_uplink_duplicate_batches_total',
      help: 'Batches JetStream recognised as already stored (Nats-Msg-Id inside its duplicate window)',
      registers: [registry],
    }),
    uplinkErrors: new Counter({
      name: 'outpost_uplink_errors_total',
      help: 'Failed publishes; the uplink rewinds to the oldest record still in the outbox',
      registers: [registry],
    }),
    uplinkConnected: new Gauge({
      name: 'outpost_uplink_connected',
      help: '1 while connected to NATS',
      registers: [registry],
    }),
    commitLatency: new Histogram({
      name: 'outpost_ingest_ack_latency_seconds',
      help: 'Time from a publish reaching the agent to its outbox commit (the PUBACK waits for it)',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
    inferenceRowsScored: new Counter({
      name: 'outpost_inference_rows_scored_total',
      help: 'Feature rows scored by the model (one inference result each)',
      registers: [registry],
    }),
    inferenceBatches: new Counter({
      name: 'outpost_inference_batches_total',
      help: 'Micro-batches scored (one onnxruntime call each)',
      registers: [registry],
    }),
    inferenceBatchRows: new Histogram({
      name: 'outpost_inference_batch_rows',
      help: 'Rows per scored micro-batch',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096],
      registers: [registry],
    }),
    inferenceLatency: new Histogram({
      name: 'outpost_inference_latency_seconds',
      help: 'Time from the outbox commit of the telemetry that completed a row to its inference result',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1, 5],
      registers: [registry],
    }),
    inferenceUnscored: new Counter({
      name: 'outpost_inference_unscored_rows_total',
      help: 'Rows (or telemetry messages, for no-model) that got no inference result, by reason',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    inferenceResultsUnstored: new Counter({
      name: 'outpost_inference_results_unstored_total',
      help: 'Inference results the outbox could not commit (published locally, not uplinked)',
      registers: [registry],
    }),
    inferenceEpisodes: new Counter({
      name: 'outpost_inference_episodes_total',
      help: 'Anomaly episodes (consecutive flagged windows of a device) reported upstream, by event: opened, closed',
      labelNames: ['event'] as const,
      registers: [registry],
    }),
    inferenceOpenEpisodes: new Gauge({
      name: 'outpost_inference_open_episodes',
      help: 'Devices with an anomaly episode open now',
      registers: [registry],
    }),
    inferenceRestarts: new Counter({
      name: 'outpost_inference_process_restarts_total',
      help: 'Inference processes restarted after they died unasked, by how they ended (signal or exit code)',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    inferenceSwaps: new Counter({
      name: 'outpost_inference_swaps_total',
      help: 'Model swaps completed (a new inference process took over)',
      registers: [registry],
    }),
    inferenceSwapRefusals: new Counter({
      name: 'outpost_inference_swap_refusals_total',
      help: 'Models refused (at start or swap), by error code; the previous model keeps serving',
      labelNames: ['code'] as const,
      registers: [registry],
    }),
    inferenceProcessRss: new Gauge({
      name: 'outpost_inference_process_rss_bytes',
      help: 'Resident set size of the serving inference process, as it reported with its latest batch',
      registers: [registry],
    }),
    inferenceModelInfo: new Gauge({
      name: 'outpost_inference_model_info',
      help: 'The model serving now (value 1), by name and version',
      labelNames: ['name', 'version'] as const,
      registers: [registry],
    }),
    inferenceUp: new Gauge({
      name: 'outpost_inference_up',
      help: '1 while an inference process with a self-tested model is serving',
      registers: [registry],
    }),
    inferenceQueuedRows: new Gauge({
      name: 'outpost_inference_queued_rows',
      help: 'Rows waiting for a micro-batch (sampled at each batch)',
      registers: [registry],
    }),
  };
}

export type AgentMetrics = ReturnType<typeof createAgentMetrics>;
