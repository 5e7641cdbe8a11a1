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
  };
}

export type AgentMetrics = ReturnType<typeof createAgentMetrics>;
