import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ControlPlaneConfigSchema, parseConfig, type AgentDetailResponse, type ControlPlaneConfigInput, type DeviceDetailResponse } from '@outpost/shared';
import { startControlPlane, type ControlPlane } from '@outpost/control-plane';
import { startServiceProcess, type ServiceProcess } from './service-process.js';

/** The built control-plane entry point. */
export const CONTROL_PLANE_MAIN = fileURLToPath(new URL('../../../control-plane/dist/main.js', import.meta.url));

/** A test config: NATS of the test, an ephemeral HTTP port, quiet logs. */
export function testControlPlaneConfig(natsUrl: string, overrides: Partial<ControlPlaneConfigInput> = {}): ControlPlaneConfigInput {
  return {
    nats: { servers: [natsUrl], reconnectWaitMs: 250, reconnectJitterMs: 250 },
    http: { host: '127.0.0.1', port: 0 },
    log: { level: 'warn' },
    ...overrides,
  };
}

export async function startInProcessControlPlane(input: ControlPlaneConfigInput): Promise<ControlPlane> {
  return startControlPlane(parseConfig(ControlPlaneConfigSchema, input, 'test control-plane config'));
}

export interface ControlPlaneProcess extends ServiceProcess {
  readonly httpPort: number;
}

/** Runs `outpost-control-plane --config <file>` as a child process a test can kill -9. */
export async function startControlPlaneProcess(input: ControlPlaneConfigInput, dir: string): Promise<ControlPlaneProcess> {
  const service = await startServiceProcess({
    main: CONTROL_PLANE_MAIN,
    config: input,
    configFile: join(dir, `control-plane-${Date.now()}-${process.hrtime.bigint()}.json`),
    readyEvent: 'control-plane-ready',
  });
  return Object.assign(service, { httpPort: service.ready['httpPort'] as number });
}

/** A small client of the control plane's HTTP API for tests. */
export function controlPlaneApi(httpPort: number) {
  const base = `http://127.0.0.1:${httpPort}`;
  const get = async <T>(path: string): Promise<{ status: number; body: T }> => {
    const response = await fetch(`${base}${path}`);
    return { status: response.status, body: (await response.json()) as T };
  };
  return {
    get,
    agent: (agentId: string) => get<AgentDetailResponse>(`/api/agents/${encodeURIComponent(agentId)}`),
    device: (agentId: string, deviceId: string) => get<DeviceDetailResponse>(`/api/agents/${encodeURIComponent(agentId)}/devices/${encodeURIComponent(deviceId)}`),
  };
}
