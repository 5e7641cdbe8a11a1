// A fleet for rollout tests: real agent processes with local inference on a signed model v1,
// each with devices publishing steadily, all reporting to one NATS; plus helpers to publish a
// model through the API and follow a rollout.
import { join } from 'node:path';
import type { AgentConfigInput, RolloutView, SigningKey } from '@outpost/shared';
import { signedConstantModel, startAgentProcess, testAgentConfig, testInferenceConfig, testUplinkConfig, writeModelFiles, type AgentProcess } from './agent-process.js';
import type { NatsServer } from './nats-server.js';
import { connectDevice, startSteadyLoad, type LoadDevice, type SteadyLoad } from './devices.js';
import { waitFor } from './wait.js';

/** The model every test agent starts with: scores every row 0.1 (threshold 0.5: never an anomaly). */
export const BASE_MODEL = { version: '1.0.0', score: 0.1 };

export interface FleetAgent {
  agentId: string;
  config: AgentConfigInput;
  process: AgentProcess;
  devices: LoadDevice[];
}

export interface TestFleet {
  agents: FleetAgent[];
  load: SteadyLoad;
  /** Restarts one agent (same data dir and config). */
  restart(agentId: string): Promise<void>;
  close(): Promise<void>;
}

export interface StartFleetOptions {
  dir: string;
  nats: NatsServer;
  key: SigningKey;
  count: number;
  devicesPerAgent?: number;
  ratePerDevicePerS?: number;
  labels?: (index: number) => Record<string, string>;
  overrides?: (index: number) => Partial<AgentConfigInput>;
}

/** Starts `count` agents in parallel (ids `gw-0`, `gw-1`, ...) with their devices publishing. */
export async function startTestFleet(options: StartFleetOptions): Promise<TestFleet> {
  const model = signedConstantModel(BASE_MODEL.score, BASE_MODEL.version, options.key, { threshold: 0.5 });
  const files = await writeModelFiles(options.dir, 'base-model', model.onnx, model.signed);
  const agents = await Promise.all(
    Array.from({ length: options.count }, async (_, i): Promise<FleetAgent> => {
      const agentId = `gw-${i}`;
      const config = testAgentConfig(join(options.dir, agentId), {
        agentId,
        labels: options.labels?.(i) ?? { site: 'lab' },
        ingest: { rateLimitMsgsPerS: 0 },
        uplink: await testUplinkConfig(options.nats, agentId, { heartbeatIntervalMs: 500, desiredRecheckMs: 2_000 }),
        // Every score upstream, not the default summaries: the rollout tests check from the uplink
        // stream that every message was scored exactly once, by which model.
        inference: testInferenceConfig(files, [options.key.trustedKey], { upstream: 'every-score' }),
        ...options.overrides?.(i),
      });
      const process = await startAgentProcess(config);
      const devices = await Promise.all(
        Array.from({ length: options.devicesPerAgent ?? 1 }, async (_, d) => {
          const deviceId = `${agentId}-dev-${d}`;
          const client = await connectDevice(`mqtt://127.0.0.1:${process.mqttPort}`, { clientId: deviceId, reconnectPeriod: 200 });
          client.on('error', () => undefined);
          return { deviceId, client };
        }),
      );
      return { agentId, config, process, devices };
    }),
  );
  const load = startSteadyLoad(
    agents.flatMap((a) => a.devices),
    options.ratePerDevicePerS ?? 10,
  );
  return {
    agents,
    load,
    async restart(agentId) {
      const agent = agents.find((a) => a.agentId === agentId)!;
      agent.process = await startAgentProcess(agent.config);
    },
    async close() {
      load.stop();
      for (const a of agents) for (const d of a.devices) d.client.end(true);
      await Promise.all(agents.map((a) => a.process.kill9()));
    },
  };
}

/** A small client of the rollout and model routes. */
export function rolloutApi(httpPort: number, token?: string) {
  const base = `http://127.0.0.1:${httpPort}`;
  const headers: Record<string, string> = { 'content-type': 'application/json', ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) };
  const call = async <T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; body: T }> => {
    const response = await fetch(`${base}${path}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    return { status: response.status, body: (await response.json()) as T };
  };
  return {
    call,
    publishModel: (signedManifest: unknown, onnx: Uint8Array) => call('POST', '/api/models', { manifest: signedManifest, onnxBase64: Buffer.from(onnx).toString('base64') }),
    create: (spec: unknown) => call<RolloutView>('POST', '/api/rollouts', { spec }),
    get: (id: string) => call<RolloutView>('GET', `/api/rollouts/${id}`),
    act: (id: string, action: string) => call<RolloutView>('POST', `/api/rollouts/${id}/${action}`),
    /** Waits until the rollout's status is one of `statuses`; returns it. */
    async waitFor(id: string, statuses: readonly string[], timeoutMs = 120_000): Promise<RolloutView> {
      let last: RolloutView | undefined;
      return waitFor(
        async () => {
          const { status, body } = await call<RolloutView>('GET', `/api/rollouts/${id}`);
          if (status !== 200) return undefined;
          last = body;
          return statuses.includes(body.status) ? body : undefined;
        },
        { what: `rollout ${id} to be ${statuses.join(' or ')} (now ${last?.status ?? 'unknown'}: ${last?.reason ?? ''})`, timeoutMs, intervalMs: 250 },
      );
    },
  };
}
