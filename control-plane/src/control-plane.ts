import { Gauge } from 'prom-client';
import { AgentStatus, createCloseStack, createLogger, type ControlPlaneConfig, type Logger } from '@outpost/shared';
import { createApiRoutes, requestFailed, routeNotFound } from './api/routes.js';
import { startHttpServer } from './api/http-server.js';
import { agentStatus } from './fleet/fleet-record.js';
import { createFleetRegistry, type FleetRegistry } from './fleet/fleet-registry.js';
import { createAccountingIngest, readAgentAccounting, type AccountingIngest } from './ingest/accounting-ingest.js';
import { BadMessageReason, decodeAgentEvent } from './ingest/decode.js';
import { createControlPlaneMetrics, type ControlPlaneMetrics } from './metrics.js';
import { connectNats } from './nats/nats-client.js';
import { AGENT_EVENTS_CONSUMER, declareStreams, topologyFor, UPLINK_CONSUMER, type Topology } from './nats/topology.js';
import type { MessageHandler, NatsClient } from './nats/types.js';

export interface ControlPlane {
  readonly httpPort: number;
  readonly metrics: ControlPlaneMetrics;
  /** Closes in reverse order of start: HTTP, consumers, writers (in-flight writes finish), NATS. Idempotent. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface StartControlPlaneOptions {
  logger?: Logger;
}

/**
 * Starts a control-plane replica from a validated config. Steps, in order:
 *   1. connect to NATS,
 *   2. declare the streams, their durable consumers and the KV buckets (create-or-verify),
 *   3. the fleet registry (and its view of the bucket),
 *   4. the accounting ingest,
 *   5. consume OUTPOST_UPLINK and OUTPOST_AGENT_EVENTS,
 *   6. the HTTP API.
 * No state lives in the process: any number of replicas may run on the same NATS. If a step
 * fails, what already started is closed again before the error is thrown.
 *
 * @throws OutpostError NATS_UNAVAILABLE when NATS cannot be reached at start.
 */
export async function startControlPlane(config: ControlPlaneConfig, options: StartControlPlaneOptions = {}): Promise<ControlPlane> {
  const logger = options.logger ?? createLogger({ name: 'outpost-control-plane', level: config.log.level });
  const metrics = createControlPlaneMetrics();
  const topology = topologyFor(config);
  const closers = createCloseStack(logger);
  const closeAll = closers.closeAll;

  try {
    const nats = await connectNats(config.nats, logger);
    closers.push(() => nats.close());
    metrics.natsConnected.set(1);
    nats.onStatus((s) => {
      if (s.type === 'disconnected' || s.type === 'closed') metrics.natsConnected.set(0);
      else if (s.type === 'reconnected') metrics.natsConnected.set(1);
    });

    await declareStreams(nats, topology);
    const [fleetKv, accountingKv] = await Promise.all([nats.openKv(topology.fleetBucket), nats.openKv(topology.accountingBucket)]);

    const fleet = createFleetRegistry({ kv: fleetKv, metrics, logger });
    closers.push(() => fleet.close());
    await fleet.start();

    const accounting = createAccountingIngest({
      kv: accountingKv,
      metrics,
      logger,
      maxBatchBytes: config.ingest.maxBatchBytes,
      maxPending: config.ingest.maxAckPending,
    });
    closers.push(() => accounting.close());

    const redeclare = (): Promise<void> => declareStreams(nats, topology);
    const uplink = nats.consume(topology.uplinkStream.name, UPLINK_CONSUMER, accounting.handleUplinkMessage, {
      maxMessages: config.ingest.fetchBatch,
      redeclare,
    });
    closers.push(() => uplink.stop());
    const agentEvents = nats.consume(topology.agentEventsStream.name, AGENT_EVENTS_CONSUMER, agentEventHandler(fleet, accounting, metrics, logger), {
      maxMessages: config.ingest.fetchBatch,
      redeclare,
    });
    closers.push(() => agentEvents.stop());

    registerGauges(metrics, nats, fleet, config, topology);

    const http = await startHttpServer({
      host: config.http.host,
      port: config.http.port,
      routes: createApiRoutes({
        fleet,
        readAccounting: (agentId) => readAgentAccounting(accountingKv, agentId),
        thresholds: config.fleet,
        registry: metrics.registry,
        health: () => [{ name: 'nats', ok: nats.isConnected(), detail: nats.isConnected() ? 'connected' : 'disconnected; reconnecting' }],
        now: Date.now,
        logger,
      }),
      notFound: routeNotFound,
      failed: requestFailed(logger),
    });
    closers.push(() => http.close());
    logger.info({ httpPort: http.port }, 'control plane started');

    let closing: Promise<void> | undefined;
    const close = (): Promise<void> => (closing ??= closeAll().then(() => logger.info('control plane stopped')));
    return { httpPort: http.port, metrics, close, [Symbol.asyncDispose]: close };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

/** Heartbeats go to the fleet registry, eviction reports to the accounting of their lane. */
function agentEventHandler(fleet: FleetRegistry, accounting: AccountingIngest, metrics: ControlPlaneMetrics, logger: Logger): MessageHandler {
  return (message) => {
    const decoded = decodeAgentEvent(message.subject, message.data);
    if (!decoded.ok) {
      metrics.badMessages.inc({ stream: 'agent-events', reason: decoded.reason });
      logger.warn({ subject: message.subject, streamSeq: message.streamSeq, reason: decoded.reason, detail: decoded.detail }, 'bad agent event refused');
      message.term(`${decoded.reason}: ${decoded.detail}`.slice(0, 256));
      return;
    }
    const event = decoded.value;
    if (event.type === 'heartbeat') fleet.submitHeartbeat({ heartbeat: event.heartbeat, storedAtMs: message.storedAtMs }, message);
    else accounting.submitEviction(event.report, message);
  };
}

function registerGauges(metrics: ControlPlaneMetrics, nats: NatsClient, fleet: FleetRegistry, config: ControlPlaneConfig, topology: Topology): void {
  new Gauge({
    name: 'outpost_cp_agents',
    help: 'Agents in the fleet registry by status (as this replica sees it)',
    labelNames: ['status'] as const,
    registers: [metrics.registry],
    collect() {
      const counts: Record<string, number> = { [AgentStatus.online]: 0, [AgentStatus.degraded]: 0, [AgentStatus.offline]: 0 };
      const nowMs = Date.now();
      for (const record of fleet.list()) {
        const { status } = agentStatus(record, nowMs, config.fleet);
        counts[status] = (counts[status] ?? 0) + 1;
      }
      for (const [status, count] of Object.entries(counts)) this.set({ status }, count);
    },
  });
  new Gauge({
    name: 'outpost_cp_consumer_pending_messages',
    help: 'Messages not yet delivered (pending) or delivered and not yet acked (ack_pending), per consumer',
    labelNames: ['consumer', 'state'] as const,
    registers: [metrics.registry],
    async collect() {
      for (const [stream, consumer] of [
        [topology.uplinkStream.name, UPLINK_CONSUMER],
        [topology.agentEventsStream.name, AGENT_EVENTS_CONSUMER],
      ] as const) {
        try {
          const lag = await nats.consumerLag(stream, consumer);
          this.set({ consumer, state: 'pending' }, lag.pending);
          this.set({ consumer, state: 'ack_pending' }, lag.ackPending);
        } catch {
          // NATS away: keep the last figures rather than fail the scrape.
        }
      }
    },
  });
  // Every reason label exists from the start, so a dashboard shows 0 rather than nothing.
  for (const stream of ['uplink', 'agent-events']) {
    for (const reason of Object.values(BadMessageReason)) metrics.badMessages.inc({ stream, reason }, 0);
  }
}
