// Where the doctor runs: a process of its own on the gateway (it opens a NATS connection with
// the agent's credentials, and finds the MQTT port free or held by the running agent), or inside
// the running agent (it uses the agent's own NATS connection and knows the ports it holds).
import { DoctorOrigin } from '@outpost/shared';
import { probeNats, type NatsTransport } from '../uplink/nats-transport.js';
import type { DoctorEnvironment } from './check.js';

/** A NATS connect, or a request, gives up after this long by default, ms. */
export const DEFAULT_DOCTOR_NATS_TIMEOUT_MS = 5_000;

export interface EnvironmentOptions {
  /** The outbox's file name in the data dir (OUTBOX_FILE_NAME of agent.ts). */
  outboxFileName: string;
  /** The doctor's clock, epoch ms; default Date.now. */
  now?: () => number;
  natsTimeoutMs?: number;
}

/** `outpost-agent doctor`: a process beside (or instead of) the agent. */
export function localDoctorEnvironment(options: EnvironmentOptions): DoctorEnvironment {
  const natsTimeoutMs = options.natsTimeoutMs ?? DEFAULT_DOCTOR_NATS_TIMEOUT_MS;
  return {
    origin: DoctorOrigin.local,
    now: options.now ?? Date.now,
    natsTimeoutMs,
    outboxFileName: options.outboxFileName,
    connectNats: (uplink, credentials) => probeNats(uplink, credentials, natsTimeoutMs),
  };
}

/** Inside the running agent: its NATS connection, and the MQTT ports its broker holds. */
export function runningAgentDoctorEnvironment(options: EnvironmentOptions & { transport: NatsTransport; mqttPorts: readonly (number | undefined)[] }): DoctorEnvironment {
  return {
    origin: DoctorOrigin.agent,
    now: options.now ?? Date.now,
    natsTimeoutMs: options.natsTimeoutMs ?? DEFAULT_DOCTOR_NATS_TIMEOUT_MS,
    outboxFileName: options.outboxFileName,
    connectNats: () => options.transport.link(),
    ownMqttPorts: new Set(options.mqttPorts.filter((p): p is number => p !== undefined)),
  };
}
