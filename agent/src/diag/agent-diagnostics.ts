// The diagnostics of a running agent, assembled from its parts: the doctor with the agent's own
// NATS connection and ports, the live status, the recent log lines; started next to the uplink.
import { type AgentConfig, type AgentDiagStatus, type Heartbeat, type Logger } from '@outpost/shared';
import type { Outbox } from '../buffer/index.js';
import { runDoctor, runningAgentDoctorEnvironment } from '../doctor/index.js';
import type { NatsTransport } from '../uplink/nats-transport.js';
import { AGENT_VERSION } from '../version.js';
import { startDiagService, type DiagService } from './diag-service.js';
import type { LogRing } from './log-ring.js';

export interface AgentDiagnosticsOptions {
  /** The agent's own config (its file's, with the enrolment bundle merged in). */
  config: AgentConfig;
  /** The file it was started from: the doctor reads it again (a change made since shows). Undefined in-process. */
  configFile: string | undefined;
  transport: NatsTransport;
  outbox: Outbox;
  /** The outbox's file name in the data dir. */
  outboxFileName: string;
  /** The broker's bound ports (undefined in bridge mode), known once it started. */
  ports: () => { mqttPort: number | undefined; tlsPort: number | undefined };
  startedAtMs: number;
  lastHeartbeat: () => Heartbeat | undefined;
  logs: LogRing | undefined;
  logger: Logger;
}

export function startAgentDiagnostics(options: AgentDiagnosticsOptions): DiagService {
  const { config, transport, outbox, logs } = options;
  const status = (): AgentDiagStatus => {
    const stats = outbox.stats();
    const heartbeat = options.lastHeartbeat();
    const { mqttPort, tlsPort } = options.ports();
    return {
      agentId: config.agentId,
      agentVersion: AGENT_VERSION,
      pid: process.pid,
      nodeVersion: process.version,
      startedAtMs: options.startedAtMs,
      nowMs: Date.now(),
      uplink: { connected: transport.connected() },
      outbox: {
        records: stats.records,
        bytes: stats.bytes,
        maxBytes: stats.maxBytes,
        evicted: stats.evicted,
        deadLetters: stats.deadLetters,
        ...(stats.oldestReceivedAtMs === undefined ? {} : { oldestReceivedAtMs: stats.oldestReceivedAtMs }),
      },
      broker: { mode: config.broker.mode, ...(mqttPort === undefined ? {} : { mqttPort }), ...(tlsPort === undefined ? {} : { tlsPort }) },
      ...(heartbeat === undefined ? {} : { lastHeartbeat: heartbeat }),
      logs: { keptLines: logs?.size() ?? 0, lastSeq: logs?.lastSeq() ?? 0, maxLines: logs?.maxLines ?? 0 },
    };
  };
  return startDiagService({
    agentId: config.agentId,
    transport,
    status,
    logs,
    logger: options.logger,
    doctor: () => {
      const { mqttPort, tlsPort } = options.ports();
      return runDoctor({
        configFile: options.configFile,
        runningConfig: config,
        env: runningAgentDoctorEnvironment({ transport, mqttPorts: [mqttPort, tlsPort], outboxFileName: options.outboxFileName }),
      });
    },
  });
}
