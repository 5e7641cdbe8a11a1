import { fileURLToPath } from 'node:url';
import { Gauge } from 'prom-client';
import { AgentStatus, AUDIT_SUBJECT, createCloseStack, createLogger, ServerEventType, type ControlPlaneConfig, type Logger } from '@outpost/shared';
import { createAuditLog } from './api/audit-log.js';
import { createAuditRoutes, withAuditLog } from './api/audit-routes.js';
import { createAuthenticator } from './api/auth.js';
import { requestFailed, routeNotFound } from './api/errors.js';
import { createDiagRoutes } from './api/diag-routes.js';
import { createEnrollmentRoutes } from './api/enrollment-routes.js';
import { createRolloutRoutes } from './api/rollout-routes.js';
import { createApiRoutes, createOpenApiRoute } from './api/routes.js';
import type { ApiRoute } from './api/route-spec.js';
import { startHttpServer } from './api/http-server.js';
import { agentStatus, toAgentSummary } from './fleet/fleet-record.js';
import { createEnrollmentService, ENROLLMENTS_BUCKET } from './fleet/enrollment.js';
import { createFleetRegistry, type FleetRegistry } from './fleet/fleet-registry.js';
import { createAccountingIngest, readAgentAccounting, type AccountingIngest } from './ingest/accounting-ingest.js';
import { BadMessageReason, decodeAgentEvent } from './ingest/decode.js';
import { createEventHub } from './live/event-hub.js';
import { startLiveView } from './live/live-view.js';
import { startAgentServices } from './rollouts/agent-services.js';
import { startRolloutController } from './rollouts/controller.js';
import { createModelStore } from './rollouts/model-store.js';
import { createRolloutService, toSummary } from './rollouts/service.js';
import { createDesiredStore, createRolloutStore } from './rollouts/stores.js';
import { createControlPlaneMetrics, type ControlPlaneMetrics } from './metrics.js';
import { connectNats } from './nats/adapter/index.js';
import { AGENT_EVENTS_CONSUMER, declareStreams, topologyFor, UPLINK_CONSUMER, type Topology } from './nats/topology.js';
import type { MessageHandler, NatsClient } from './nats/types.js';

/** The dashboard's build output (`npm run build`): control-plane/dist/dashboard, from src/ (tests) and dist/ alike. */
export const DEFAULT_DASHBOARD_DIR = fileURLToPath(new URL('../dist/dashboard/', import.meta.url));

export interface ControlPlane {
  readonly httpPort: number;
  readonly metrics: ControlPlaneMetrics;
  /** Every HTTP route registered, `{ method, path }` in fastify path syntax. */
  httpRoutes(): { method: string; path: string }[];
  /** Whether the dashboard's files were found at start. */
  readonly dashboardServed: boolean;
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
 *   2. declare the streams (uplink, agent events, audit), their durable consumers and the KV
 *      buckets (create-or-verify),
 *   3. the fleet registry (and its view of the bucket),
 *   4. the accounting ingest,
 *   5. consume OUTPOST_UPLINK and OUTPOST_AGENT_EVENTS,
 *   6. the live view (recent window, anomalies, event streams), read back from OUTPOST_UPLINK,
 *   7. the consumer-lag poll for /metrics,
 *   8. the HTTP API and the dashboard.
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
    const [fleetKv, accountingKv, desiredKv, rolloutsKv, modelObjects] = await Promise.all([
      nats.openKv(topology.fleetBucket),
      nats.openKv(topology.accountingBucket),
      nats.openKv(topology.desiredBucket),
      nats.openKv(topology.rolloutsBucket),
      nats.openObjectStore(topology.modelStore),
    ]);
    const enrollmentsKv = await nats.openKv({ bucket: ENROLLMENTS_BUCKET, description: 'Outpost agent enrolments and the AGENTS account revocations', replicas: config.streams.replicas });

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

    registerGauges(metrics, fleet, config);

    // Rollouts: the two buckets' views, then the controller that moves every rollout on.
    const rolloutStore = createRolloutStore(rolloutsKv, logger);
    const desiredStore = createDesiredStore(desiredKv, logger);
    closers.push(async () => {
      rolloutStore.close();
      desiredStore.close();
    });
    await Promise.all([rolloutStore.start(), desiredStore.start()]);
    const controller = startRolloutController({
      rollouts: rolloutStore,
      desired: desiredStore,
      fleet,
      thresholds: config.fleet,
      publish: (subject, data) => nats.publish(subject, data),
      metrics,
      logger,
      tickMs: config.rollouts.tickMs,
    });
    closers.push(() => controller.close());
    const models = createModelStore({ store: modelObjects, trustedKeys: config.rollouts.trustedKeys });
    const agentServices = startAgentServices({ nats, desired: desiredStore, models: modelObjects, logger });
    closers.push(async () => agentServices.stop());
    const enrollment = await createEnrollmentService({ config, kv: enrollmentsKv, trustedKeys: config.rollouts.trustedKeys, logger });
    // A server restarted from its preloaded accounts learns every revocation again.
    if (config.security !== undefined) await enrollment.syncAccount();
    const rolloutService = createRolloutService({ rollouts: rolloutStore, models, observe: controller.observe });

    const agentList = () => {
      const nowMs = Date.now();
      return { agents: fleet.list().map((r) => toAgentSummary(r.agentId, r, nowMs, config.fleet)) };
    };
    const events = createEventHub({
      agents: agentList,
      keepaliveMs: config.http.sse.keepaliveMs,
      maxQueuedEvents: config.http.sse.maxQueuedEvents,
      maxClients: config.http.sse.maxClients,
      metrics: {
        clientsChanged: (clients) => metrics.sseClients.set(clients),
        clientDropped: (reason) => metrics.sseDroppedClients.inc({ reason }),
      },
    });
    metrics.sseDroppedClients.inc({ reason: 'slow' }, 0);
    closers.push(async () => events.close());
    const live = startLiveView({ nats, config: config.live, maxBatchBytes: config.ingest.maxBatchBytes, hub: events, metrics, logger });
    closers.push(() => live.close());
    rolloutStore.onChange((_id, entry) => {
      if (entry !== undefined) events.publish({ type: ServerEventType.rollout, data: toSummary(entry.value) });
    });

    const stopLagPoll = pollConsumerLag(metrics, nats, topology, config.ingest.lagPollIntervalMs);
    closers.push(async () => stopLagPoll());

    const auth = createAuthenticator(config.http.auth);
    if (!auth.enabled) logger.warn('no API tokens configured (http.auth.tokens): the HTTP API answers anyone who can reach it, as an operator');
    // The audit log of mutating API calls: written around every operator route, listed by GET /api/audit.
    const audit = createAuditLog({
      nats,
      stream: topology.auditStream.name,
      subject: AUDIT_SUBJECT,
      redeclare: () => nats.ensureStream(topology.auditStream),
      metrics: { stored: () => metrics.auditEntries.inc(), failed: () => metrics.auditWriteFailures.inc() },
      logger,
    });
    const routes: ApiRoute[] = withAuditLog(
      [
        ...createApiRoutes({
          fleet,
          readAccounting: (agentId) => readAgentAccounting(accountingKv, agentId),
          thresholds: config.fleet,
          registry: metrics.registry,
          health: () => [{ name: 'nats', ok: nats.isConnected(), detail: nats.isConnected() ? 'connected' : 'disconnected; reconnecting' }],
          window: live.window,
          recentWindowMs: config.live.recentWindowMs,
          anomalies: live.anomalies,
          events,
          now: Date.now,
        }),
        ...createRolloutRoutes({ rollouts: rolloutService, models }),
        ...createEnrollmentRoutes(enrollment),
        ...createDiagRoutes({ nats, fleet }),
        ...createAuditRoutes({ audit }),
      ],
      audit,
    );
    routes.push(createOpenApiRoute(() => routes.map((r) => r.doc)));
    const http = await startHttpServer({
      host: config.http.host,
      port: config.http.port,
      routes,
      authorize: (access, request) => auth.check(access, request),
      dashboardDir: config.http.dashboardDir ?? DEFAULT_DASHBOARD_DIR,
      notFound: routeNotFound,
      failed: requestFailed(logger),
      observe: ({ method, route, status, durationMs }) => metrics.httpRequestDuration.observe({ method, route, status: String(status) }, durationMs / 1000),
    });
    closers.push(() => http.close());
    if (!http.dashboardServed) logger.warn({ dashboardDir: config.http.dashboardDir ?? DEFAULT_DASHBOARD_DIR }, 'dashboard not built: / answers a note instead');
    const tokenRoles = Object.fromEntries(['viewer', 'operator'].map((role) => [role, config.http.auth.tokens.filter((t) => t.role === role).length]));
    logger.info({ httpPort: http.port, auth: auth.enabled ? `${config.http.auth.tokens.length} token(s)` : 'off', tokenRoles }, 'control plane started');

    let closing: Promise<void> | undefined;
    const close = (): Promise<void> => (closing ??= closeAll().then(() => logger.info('control plane stopped')));
    return { httpPort: http.port, metrics, httpRoutes: http.registeredRoutes, dashboardServed: http.dashboardServed, close, [Symbol.asyncDispose]: close };
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

function registerGauges(metrics: ControlPlaneMetrics, fleet: FleetRegistry, config: ControlPlaneConfig): void {
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
  // Every reason label exists from the start, so a dashboard shows 0 rather than nothing.
  for (const stream of ['uplink', 'agent-events']) {
    for (const reason of Object.values(BadMessageReason)) metrics.badMessages.inc({ stream, reason }, 0);
  }
}

/**
 * Reads the lag of both durable consumers every `intervalMs` into /metrics (a scrape then never
 * waits on NATS); while NATS is away the last figures stay. Returns the stop function.
 */
function pollConsumerLag(metrics: ControlPlaneMetrics, nats: NatsClient, topology: Topology, intervalMs: number): () => void {
  let inFlight = false;
  const poll = async (): Promise<void> => {
    if (inFlight) return;
    inFlight = true;
    try {
      for (const [stream, consumer] of [
        [topology.uplinkStream.name, UPLINK_CONSUMER],
        [topology.agentEventsStream.name, AGENT_EVENTS_CONSUMER],
      ] as const) {
        const lag = await nats.consumerLag(stream, consumer).catch(() => undefined);
        if (lag === undefined) continue;
        metrics.consumerPending.set({ consumer, state: 'pending' }, lag.pending);
        metrics.consumerPending.set({ consumer, state: 'ack_pending' }, lag.ackPending);
      }
    } finally {
      inFlight = false;
    }
  };
  void poll();
  const timer = setInterval(() => void poll(), intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
