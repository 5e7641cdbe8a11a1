// Everything the demo configures, in one place: which agents with which labels, which devices
// on which agent with which passwords, and the config files of nats-server's clients. Later
// capabilities (inference models, API tokens) add their settings here.
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  AgentConfigSchema,
  ControlPlaneConfigSchema,
  parseConfig,
  type AgentConfigInput,
  type ControlPlaneConfigInput,
} from '@outpost/shared';
import { hashPassword } from '@outpost/agent';

/** The repository root, from tests/src/demo (vitest) and tests/dist/demo (node) alike. */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export const BINARIES = {
  controlPlane: join(REPO_ROOT, 'control-plane/dist/main.js'),
  agent: join(REPO_ROOT, 'agent/dist/main.js'),
  simulator: join(REPO_ROOT, 'simulators/dist/main.js'),
} as const;

/** The simulator scenario the demo runs (rates, anomalies, faults); flags set devices and credentials. */
export const DEMO_SCENARIO = join(REPO_ROOT, 'simulators/scenarios/demo.yaml');

export const DEFAULT_DEMO_DATA_DIR = join(REPO_ROOT, '.data/demo');
export const DEFAULT_DEMO_HTTP_PORT = 8080;
export const DEFAULT_DEMO_AGENTS = 3;
export const DEFAULT_DEMO_DEVICES = 30;
/** Heartbeats every 5 s, so the dashboard shows the fleet soon after start. */
export const DEMO_HEARTBEAT_INTERVAL_MS = 5_000;
export const DEMO_DEVICE_PREFIX = 'dev-';
/** A device the simulator never drives, for the user's own mosquitto_pub: no ClientId takeover fights. */
export const MANUAL_DEVICE_ID = 'my-device';

/** What the user chose on the command line. */
export interface DemoOptions {
  agents: number;
  /** Simulated devices over all agents. */
  devices: number;
  /** Control-plane HTTP port; 0: any free port. */
  httpPort: number;
  /** Messages per second of each simulated device; undefined: the scenario's rate. */
  ratePerS: number | undefined;
  sim: boolean;
  dataDir: string;
}

export interface DemoAgentPlan {
  agentId: string;
  labels: Record<string, string>;
  /** Simulated device ids on this agent (a contiguous index range). */
  deviceIds: string[];
  firstIndex: number;
  /** The agent that also accepts the manual device. */
  hasManualDevice: boolean;
}

/** Files and directories in the demo's data dir. */
export function demoPaths(dataDir: string) {
  return {
    marker: join(dataDir, '.outpost-demo'),
    nats: join(dataDir, 'nats'),
    logs: join(dataDir, 'logs'),
    controlPlaneConfig: join(dataDir, 'control-plane.json'),
    agents: join(dataDir, 'agents'),
    agentConfig: (agentId: string) => join(dataDir, 'agents', `${agentId}.json`),
    agentData: (agentId: string) => join(dataDir, 'agents', agentId),
    credentials: join(dataDir, 'device-credentials.json'),
    operatorToken: join(dataDir, 'operator-token'),
    log: (name: string) => join(dataDir, 'logs', `${name}.log`),
  };
}

/** Device id of simulated device `index` (1-based), as the simulator names it: dev-0001. */
export function demoDeviceId(index: number): string {
  return `${DEMO_DEVICE_PREFIX}${String(index).padStart(4, '0')}`;
}

/**
 * Agents demo-agent-1..N with site/line labels (two lines per site: plant-a/line-1,
 * plant-a/line-2, plant-b/line-1, ...), the simulated devices split into contiguous ranges.
 */
export function planDemoAgents(options: Pick<DemoOptions, 'agents' | 'devices' | 'sim'>): DemoAgentPlan[] {
  const devices = options.sim ? options.devices : 0;
  let next = 1;
  return Array.from({ length: options.agents }, (_, i) => {
    const count = Math.floor(devices / options.agents) + (i < devices % options.agents ? 1 : 0);
    const firstIndex = next;
    next += count;
    return {
      agentId: `demo-agent-${i + 1}`,
      labels: { site: `plant-${String.fromCharCode(97 + Math.floor(i / 2) % 26)}`, line: `line-${(i % 2) + 1}` },
      deviceIds: Array.from({ length: count }, (_, k) => demoDeviceId(firstIndex + k)),
      firstIndex,
      hasManualDevice: i === 0,
    };
  });
}

/** A fresh random password per device (URL-safe base64, safe on a shell command line). */
export function generateDevicePasswords(deviceIds: readonly string[]): Record<string, string> {
  return Object.fromEntries(deviceIds.map((id) => [id, randomBytes(12).toString('base64url')]));
}

/** Name of the demo's operator token in the control plane's config. */
export const DEMO_OPERATOR_TOKEN_NAME = 'demo-operator';

/** A fresh operator token for the API and dashboard (URL-safe, so it fits a URL fragment). */
export function generateOperatorToken(): string {
  return randomBytes(24).toString('base64url');
}

/**
 * The control plane's config: the demo's NATS, the chosen HTTP port, quiet logs, and the API
 * closed to all but the demo's operator token (stored as its SHA-256, as an operator would).
 */
export function controlPlaneConfig(natsUrl: string, httpPort: number, operatorToken: string): ControlPlaneConfigInput {
  const sha256 = createHash('sha256').update(operatorToken).digest('hex');
  const config: ControlPlaneConfigInput = {
    nats: { servers: [natsUrl], name: 'outpost-demo-control-plane' },
    http: { host: '127.0.0.1', port: httpPort, auth: { tokens: [{ name: DEMO_OPERATOR_TOKEN_NAME, sha256 }] } },
    log: { level: 'warn' },
  };
  parseConfig(ControlPlaneConfigSchema, config, 'demo control-plane config');
  return config;
}

/**
 * One agent's config: embedded broker on a free port with a password per device (scrypt
 * hashes made here), uplink to the demo's NATS, metrics on a free port, quiet logs.
 */
export async function agentConfig(plan: DemoAgentPlan, natsUrl: string, dataDir: string, passwords: Record<string, string>): Promise<AgentConfigInput> {
  const ids = [...plan.deviceIds, ...(plan.hasManualDevice ? [MANUAL_DEVICE_ID] : [])];
  const devices = await Promise.all(ids.map(async (id) => ({ id, passwordHash: await hashPassword(passwords[id] as string) })));
  const config: AgentConfigInput = {
    agentId: plan.agentId,
    dataDir: demoPaths(dataDir).agentData(plan.agentId),
    labels: plan.labels,
    broker: { mode: 'embedded', host: '127.0.0.1', port: 0, allowAnonymous: false, devices },
    uplink: { servers: [natsUrl], heartbeatIntervalMs: DEMO_HEARTBEAT_INTERVAL_MS },
    http: { host: '127.0.0.1', port: 0 },
    log: { level: 'warn' },
  };
  parseConfig(AgentConfigSchema, config, `demo agent config ${plan.agentId}`);
  return config;
}

/** The simulator's command line for one agent's devices. */
export function simulatorArgs(plan: DemoAgentPlan, mqttUrl: string, credentialsFile: string, ratePerS: number | undefined): string[] {
  return [
    BINARIES.simulator,
    'devices',
    '--scenario',
    DEMO_SCENARIO,
    '--url',
    mqttUrl,
    '--devices',
    String(plan.deviceIds.length),
    '--prefix',
    DEMO_DEVICE_PREFIX,
    '--start-index',
    String(plan.firstIndex),
    '--credentials',
    credentialsFile,
    '--json',
    ...(ratePerS === undefined ? [] : ['--rate', String(ratePerS)]),
  ];
}
