import { join } from 'node:path';
import { Gauge } from 'prom-client';
import { access } from 'node:fs/promises';
import { configVersion, createCloseStack, createLogger, ErrorCode, errorsTopic, LANES_IN_DRAIN_ORDER, OutpostError, redactUrl, type AgentConfig, type Heartbeat, type Logger } from '@outpost/shared';
import { openOutbox, type Outbox, type OutboxRecordInput } from './buffer/index.js';
import { createDeviceAuthenticator } from './broker/device-auth.js';
import { startEmbeddedBroker, type EmbeddedBroker } from './broker/embedded-broker.js';
import { startMqttBridge, type MqttBridge } from './broker/mqtt-bridge.js';
import { startAgentHttpServer, type AgentHttpServer, type HealthCheck } from './http/http-server.js';
import { startInference, type CommittedTelemetry, type Inference } from './inference/index.js';
import { createIngest } from './ingest/ingest.js';
import { createRateLimiter } from './ingest/rate-limiter.js';
import { createResendWindow } from './ingest/resend-window.js';
import { createLogRing, startAgentDiagnostics, type LogRing } from './diag/index.js';
import { createAgentMetrics, type AgentMetrics } from './metrics.js';
import { readAppliedState, cachedModelFiles, type AppliedState } from './reconcile/applied-state.js';
import { resolveManagedConfig } from './reconcile/managed-config.js';
import { startReconciler, type LiveAgent, type Reconciler } from './reconcile/reconciler.js';
import { startHeartbeats, type HeartbeatSender } from './uplink/heartbeat.js';
import { readUplinkCredentials } from './uplink/credentials.js';
import { createNatsTransport } from './uplink/nats-transport.js';
import { startUplink, type Uplink } from './uplink/uplink.js';
import { AGENT_VERSION } from './version.js';

/** The outbox file inside the agent's data dir. */
export const OUTBOX_FILE_NAME = 'outbox.sqlite';

export interface Agent {
  readonly agentId: string;
  readonly epoch: string;
  /** Embedded broker's TCP port; undefined in bridge mode. */
  readonly mqttPort: number | undefined;
  readonly tlsPort: number | undefined;
  readonly httpPort: number;
  readonly outbox: Outbox;
  readonly metrics: AgentMetrics;
  /** Local inference; undefined when `inference.enabled` is false. */
  readonly inference: Inference | undefined;
  /** Closes in reverse order of start: HTTP, uplink, broker or bridge, inference, outbox. Idempotent. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface StartAgentOptions {
  logger?: Logger;
  /** Ends the process at once; used only by configured fault injection (chaos tests). */
  crash?: () => void;
  /** The config file the agent was started from: the remote doctor reads it again. */
  configFile?: string;
  /** Where `logger` keeps its recent lines for `outpostctl agents logs` (made here with the default logger). */
  logLines?: LogRing;
}

/**
 * Starts an agent from a validated config: outbox, inference (with its model loaded, or
 * refused and logged), ingest, broker (embedded or bridge), uplink, HTTP.
 * If a step fails, what already started is closed again before the error is thrown.
 */
export async function startAgent(ownConfig: AgentConfig, options: StartAgentOptions = {}): Promise<Agent> {
  const logLines = options.logLines ?? (options.logger === undefined ? createLogRing() : undefined);
  const logger = options.logger ?? createLogger({ name: 'outpost-agent', level: ownConfig.log.level, base: { agentId: ownConfig.agentId }, onLine: (line) => logLines?.push(line) });
  // The enrolment bundle's labels and trusted keys are part of the agent's own config.
  const { config: fileConfig, credentials } = await readUplinkCredentials(ownConfig);
  // What a rollout applied last, run again before anything starts (DESIGN section 3).
  const applied = await readAppliedState(fileConfig.dataDir, logger);
  const config = await effectiveConfig(fileConfig, applied, logger);
  /** The config running now: the effective one at start, then whatever a rollout applies. */
  let current = config;
  const startedAtMs = Date.now();
  const metrics = createAgentMetrics({ agentId: config.agentId });
  const closers = createCloseStack(logger);
  const closeAll = closers.closeAll;

  try {
    // The uplink is built after the outbox; commits and evictions wake it through these.
    let uplink: Uplink | undefined;
    const outbox = await openOutbox({
      path: join(config.dataDir, OUTBOX_FILE_NAME),
      agentId: config.agentId,
      durability: config.outbox.durability,
      maxBytes: config.outbox.maxBytes,
      deadLetterMaxRows: config.outbox.deadLetterMaxRows,
      maxRecordsPerCommit: config.outbox.maxRecordsPerCommit,
      maxFileBytes: config.outbox.maxFileBytes,
      logger,
      onCommit: () => uplink?.kick(),
      onEviction: (e) => {
        logger.warn({ lane: e.lane, firstSeq: e.firstSeq, lastSeq: e.lastSeq, records: e.records, bytes: e.bytes }, 'outbox full: records evicted');
        uplink?.evictionsChanged();
      },
    });
    closers.push(() => outbox.close());
    registerOutboxGauges(metrics, outbox);

    let broker: EmbeddedBroker | undefined;
    let bridge: MqttBridge | undefined;
    /** Local publishes from the agent itself (inference results, error answers); never throws. */
    const publishLocal = (topic: string, payload: string): void => {
      if (broker !== undefined) broker.publish(topic, payload).catch((err: unknown) => logger.debug({ err, topic }, 'local publish not delivered'));
      else bridge?.publish(topic, payload);
    };

    let inference: Inference | undefined;
    if (config.inference.enabled) {
      const started = await startInference({ config: config.inference, outbox, publish: publishLocal, metrics, logger });
      inference = started;
      closers.push(() => started.close());
    }

    // Bridge mode has no per-device limit: its one connection is shared by every device, so
    // pausing it would hold back all of them. The site broker limits its devices.
    const rateLimiter = config.broker.mode === 'embedded' ? createRateLimiter(config.ingest.rateLimitMsgsPerS, config.ingest.rateLimitBurst) : createRateLimiter(0);
    const ingest = createIngest({
      outbox: inference === undefined ? outbox : feedInferenceOnCommit(outbox, inference),
      metrics,
      logger,
      rateLimiter,
      resendWindow: createResendWindow(await outbox.deviceWindow(), config.ingest.resendWindowDevices),
      answer: (deviceId, error) => publishLocal(errorsTopic(deviceId), JSON.stringify(error)),
    });

    if (config.broker.mode === 'embedded') {
      broker = await startEmbeddedBroker({
        config: config.broker,
        authenticator: createDeviceAuthenticator({ devices: config.broker.devices, allowAnonymous: config.broker.allowAnonymous }),
        ingest,
        rateLimiter,
        metrics,
        logger,
      });
      const b = broker;
      closers.push(() => b.close());
    } else {
      bridge = await startMqttBridge({ config: config.broker, ingest, logger });
      const b = bridge;
      closers.push(() => b.close());
    }

    let reconciler: Reconciler | undefined;
    let sender: HeartbeatSender | undefined;
    if (config.uplink !== undefined && credentials !== undefined) {
      const transport = createNatsTransport(config.uplink, credentials, logger);
      closers.push(() => transport.close());
      const startedUplink = startUplink({ agentId: config.agentId, epoch: outbox.epoch, config: config.uplink, outbox, transport, metrics, logger, faults: config.faults, crash: options.crash });
      uplink = startedUplink;
      closers.push(() => startedUplink.close());
      // Rates since the previous heartbeat, from counters the agent keeps anyway.
      let previous = { atMs: Date.now(), accepted: 0, uplinked: 0 };
      let uplinked = 0;
      let lastHeartbeat: Heartbeat | undefined;
      startedUplink.onRecordsAcknowledged((n) => {
        uplinked += n;
      });
      const heartbeats = startHeartbeats({
        agentId: config.agentId,
        intervalMs: config.uplink.heartbeatIntervalMs,
        transport,
        logger,
        snapshot: () => {
          const stats = outbox.stats();
          const counts = ingest.counts();
          const nowMs = Date.now();
          const elapsedS = Math.max(0.001, (nowMs - previous.atMs) / 1000);
          const acceptedPerS = Math.round((counts.accepted - previous.accepted) / elapsedS);
          const recordsPerS = Math.round((uplinked - previous.uplinked) / elapsedS);
          previous = { atMs: nowMs, accepted: counts.accepted, uplinked };
          const inferenceStatus = inference?.status();
          const desiredReport = reconciler?.report() ?? applied?.report;
          const inferenceModel = inferenceStatus?.model === undefined ? undefined : `${inferenceStatus.model.name}@${inferenceStatus.model.version}`;
          return (lastHeartbeat = {
            agentId: config.agentId,
            epoch: outbox.epoch,
            ts: Date.now(),
            startedAtMs,
            labels: current.labels,
            versions: { agent: AGENT_VERSION, ...(inferenceModel === undefined ? {} : { model: inferenceModel }), config: reconciler?.configVersion() ?? configVersion(applied?.desired.config?.patch ?? null) },
            buffer: {
              records: stats.records,
              bytes: stats.bytes,
              maxBytes: stats.maxBytes,
              ...(stats.oldestReceivedAtMs === undefined ? {} : { oldestRecordAgeMs: Math.max(0, Date.now() - stats.oldestReceivedAtMs) }),
              evictedRecords: stats.evicted,
              storageOk: ingest.storageHealthy(),
            },
            ingest: { accepted: counts.accepted, rejected: counts.rejected, resends: counts.resends, devicesConnected: broker?.connectedClients() ?? 0, acceptedPerS },
            uplink: { recordsPerS },
            ...(inferenceStatus === undefined
              ? {}
              : { inference: { up: inferenceStatus.up, ...(inferenceModel === undefined ? {} : { model: inferenceModel }), ...(inferenceStatus.counts === undefined ? {} : { counts: inferenceStatus.counts }) } }),
            ...(desiredReport === undefined ? {} : { desired: desiredReport }),
          });
        },
      });
      closers.push(async () => heartbeats.close());
      sender = heartbeats;
      // Diagnostics for the control plane (outpostctl agents doctor|status|logs) on the same connection.
      const diagnostics = startAgentDiagnostics({ config, configFile: options.configFile, transport, outbox, outboxFileName: OUTBOX_FILE_NAME, ports: () => ({ mqttPort: broker?.mqttPort, tlsPort: broker?.tlsPort }), startedAtMs, lastHeartbeat: () => lastHeartbeat, logs: logLines, logger });
      closers.push(async () => diagnostics.close());

      // Desired state: learned over the same connection, applied live, reported in the heartbeat.
      const live: LiveAgent = {
        baseConfig: fileConfig,
        currentConfig: () => current,
        applyConfig(next, closeConnections) {
          if (broker !== undefined && next.broker.mode === 'embedded') {
            broker.reconfigure({ devices: next.broker.devices, allowAnonymous: next.broker.allowAnonymous, maxPacketBytes: next.broker.maxPacketBytes, closeAll: closeConnections });
          }
          if (next.broker.mode === 'embedded') rateLimiter.configure(next.ingest.rateLimitMsgsPerS, next.ingest.rateLimitBurst);
          outbox.setMaxBytes(next.outbox.maxBytes);
          if (next.uplink !== undefined && next.uplink.heartbeatIntervalMs !== current.uplink?.heartbeatIntervalMs) sender?.setIntervalMs(next.uplink.heartbeatIntervalMs);
          inference?.configure({ threshold: next.inference.threshold, maxBatchSize: next.inference.maxBatchSize, maxBatchWaitMs: next.inference.maxBatchWaitMs, maxQueuedRows: next.inference.maxQueuedRows });
          current = next;
        },
        runningModel: () => inference?.status().model,
        swapModel: (input) =>
          inference === undefined
            ? Promise.reject(new OutpostError(ErrorCode.INFERENCE_UNAVAILABLE, 'inference is not enabled in this agent'))
            : inference.swapModel(input),
      };
      const startedReconciler = startReconciler({
        agentId: config.agentId,
        dataDir: config.dataDir,
        source: transport,
        live,
        initial: applied,
        onReport: () => sender?.beatNow(),
        logger,
        recheckMs: config.uplink.desiredRecheckMs,
      });
      reconciler = startedReconciler;
      closers.push(() => startedReconciler.close());
    }

    const http: AgentHttpServer = await startAgentHttpServer({
      host: config.http.host,
      port: config.http.port,
      registry: metrics.registry,
      health: (): HealthCheck[] => [
        ingest.storageHealthy()
          ? { name: 'outbox', ok: true, detail: `${outbox.stats().bytes} of ${outbox.stats().maxBytes} bytes` }
          : { name: 'outbox', ok: false, detail: 'the last commit failed (disk full?); publishes stay unacknowledged until it succeeds' },
        bridge === undefined ? { name: 'broker', ok: true } : { name: 'bridge', ok: bridge.connected(), detail: config.broker.mode === 'bridge' ? redactUrl(config.broker.url) : '' },
        ...(inference === undefined ? [] : [inferenceHealth(inference)]),
      ],
    });
    closers.push(() => http.close());

    let closing: Promise<void> | undefined;
    const close = (): Promise<void> => (closing ??= closeAll().then(() => logger.info('agent stopped')));
    return {
      agentId: config.agentId,
      epoch: outbox.epoch,
      mqttPort: broker?.mqttPort,
      tlsPort: broker?.tlsPort,
      httpPort: http.port,
      outbox,
      metrics,
      inference,
      close,
      [Symbol.asyncDispose]: close,
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

/**
 * The outbox as ingest sees it: every telemetry record, once its append has committed, is
 * handed to inference. The hand-off waits for a setImmediate, so the PUBACKs of a commit are
 * written before any feature work starts, and `observe` only queues: ingest never waits on
 * inference. Results are appended through the plain outbox, so they are never fed back.
 */
function feedInferenceOnCommit(outbox: Outbox, inference: Inference): Outbox {
  let pending: { record: CommittedTelemetry; committedAtMs: number }[] = [];
  const flush = (): void => {
    const records = pending;
    pending = [];
    for (const { record, committedAtMs } of records) inference.observe(record, committedAtMs);
  };
  const observeLater = (record: OutboxRecordInput): void => {
    if (pending.length === 0) setImmediate(flush);
    pending.push({ record: { deviceId: record.deviceId, deviceSeq: record.deviceSeq, ts: record.ts, body: record.body }, committedAtMs: performance.now() });
  };
  return {
    ...outbox,
    append(record) {
      const committed = outbox.append(record);
      if (record.kind === 'telemetry') committed.then(() => observeLater(record), () => undefined);
      return committed;
    },
    appendWith(record, done) {
      if (record.kind !== 'telemetry') return outbox.appendWith(record, done);
      outbox.appendWith(record, (error, seq) => {
        if (error === null) observeLater(record);
        done(error, seq);
      });
    },
  };
}

function inferenceHealth(inference: Inference): HealthCheck {
  const status = inference.status();
  if (status.model === undefined) return { name: 'inference', ok: false, detail: 'no model loaded' };
  const model = `${status.model.name}@${status.model.version}`;
  return status.up ? { name: 'inference', ok: true, detail: model } : { name: 'inference', ok: false, detail: `${model}: inference process restarting` };
}

function registerOutboxGauges(metrics: AgentMetrics, outbox: Outbox): void {
  new Gauge({
    name: 'outpost_outbox_records',
    help: 'Records waiting in the outbox, per lane',
    labelNames: ['lane'] as const,
    registers: [metrics.registry],
    collect() {
      const stats = outbox.stats();
      for (const lane of LANES_IN_DRAIN_ORDER) this.set({ lane }, stats.records[lane]);
    },
  });
  new Gauge({
    name: 'outpost_outbox_bytes',
    help: 'Bytes of records in the outbox (counted against outbox.maxBytes)',
    registers: [metrics.registry],
    collect() {
      this.set(outbox.stats().bytes);
    },
  });
  new Gauge({
    name: 'outpost_outbox_evicted_records',
    help: 'Records evicted to stay inside outbox.maxBytes since the database was created, per lane',
    labelNames: ['lane'] as const,
    registers: [metrics.registry],
    collect() {
      const stats = outbox.stats();
      for (const lane of LANES_IN_DRAIN_ORDER) this.set({ lane }, stats.evicted[lane]);
    },
  });
  new Gauge({
    name: 'outpost_outbox_dead_letters',
    help: 'Dead letters kept (bounded by outbox.deadLetterMaxRows)',
    registers: [metrics.registry],
    collect() {
      this.set(outbox.stats().deadLetters);
    },
  });
}

/**
 * The config to start with: the file's, with the config patch a rollout applied last, and the
 * model it brought (from the model cache, verified again at load). Anything that no longer
 * fits (a local edit made the patch invalid, a cached file is gone) is logged, and the file's
 * own config runs instead.
 */
async function effectiveConfig(fileConfig: AgentConfig, applied: AppliedState | undefined, logger: Logger): Promise<AgentConfig> {
  if (applied === undefined) return fileConfig;
  let config = fileConfig;
  const resolved = resolveManagedConfig(fileConfig, applied.desired.config?.patch ?? null);
  if (resolved.ok) config = resolved.config;
  else logger.error({ reason: resolved.reason, revision: applied.revision }, 'the applied config patch no longer fits the local config; running the local config');
  const model = applied.desired.model;
  if (model !== null && config.inference.enabled) {
    const files = cachedModelFiles(fileConfig.dataDir, model.name, model.version);
    try {
      await Promise.all([access(files.onnxPath), access(files.manifestPath)]);
      config = { ...config, inference: { ...config.inference, model: files } };
    } catch {
      logger.error({ model: `${model.name}@${model.version}` }, 'the model a rollout applied is missing from the model cache; starting with the local model');
    }
  }
  return config;
}
