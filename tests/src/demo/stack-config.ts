// Everything the demo configures, in one place: which agents with which labels, which devices
// on which agent with which passwords, which model the agents run and which key they trust,
// and the config files of nats-server's clients. Later capabilities add their settings here.
import { createHash, randomBytes } from 'node:crypto';
import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  AgentConfigSchema,
  ControlPlaneConfigSchema,
  parseConfig,
  type AgentConfigInput,
  type ControlPlaneConfigInput,
  type ModelRef,
  type TrustedKey,
} from '@outpost/shared';
import { hashPassword } from '@outpost/agent';
import {
  ARTIFACTS_DIR,
  artifactFiles,
  DEFAULT_MODEL_NAME,
  DEFAULT_MODEL_VERSION,
  DEV_KEY_FILE_NAME,
  loadOrCreateSigningKey,
  readManifestFile,
  signManifestFile,
  type SigningKeyFile,
} from '@outpost/models';

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
/**
 * Messages per second of each simulated device, over the scenario's 1. The model's windows
 * are 32 samples with a row every 4: at 2 msg/s a device's first inference result comes after
 * 16 s instead of 32 s, then one every 2 s. The models are trained and evaluated at 1 Hz
 * (models/README.md has how the demo's anomaly-pca@1.0.0 fares there); the machine profile's
 * dynamics and the anomalies' durations are in seconds, so at 2 msg/s a window spans 16 s of
 * a device instead of 32. The rate is for the demo's pace, not for better detection: no
 * evaluation at 2 Hz backs a detection figure. Not 4 (8 s windows): when the rate was chosen
 * the whole demo took about 1.2 cores at 4 msg/s, 0.8 at 2 and 0.5 at 1.
 */
export const DEFAULT_DEMO_RATE_PER_S = 2;
/** Heartbeats every 5 s, so the dashboard shows the fleet soon after start. */
export const DEMO_HEARTBEAT_INTERVAL_MS = 5_000;
export const DEMO_DEVICE_PREFIX = 'dev-';
/** A device the simulator never drives, for the user's own mosquitto_pub: no ClientId takeover fights. */
export const MANUAL_DEVICE_ID = 'my-device';

/** The model every demo agent runs: the shipped one (models/artifacts), signed with the dev key. */
export const DEMO_MODEL: ModelRef = { name: DEFAULT_MODEL_NAME, version: DEFAULT_MODEL_VERSION };
/** The dev signing key `npm run -w models sign` uses too: created on first use, git-ignored. */
export const DEV_SIGNING_KEY_FILE = join(REPO_ROOT, '.keys', DEV_KEY_FILE_NAME);

/** What the user chose on the command line. */
export interface DemoOptions {
  agents: number;
  /** Simulated devices over all agents. */
  devices: number;
  /** Control-plane HTTP port; 0: any free port. */
  httpPort: number;
  /** Messages per second of each simulated device. */
  ratePerS: number;
  sim: boolean;
  /**
   * Seconds of traffic each simulator sends before it ends (and prints its summary); the rest of
   * the demo keeps running. Undefined: simulators run until the demo stops.
   */
  simDurationS: number | undefined;
  /** Agents run the shipped model; false: agents without local inference. */
  inference: boolean;
  /**
   * NATS with JWT auth and TLS, agents enrolled through the control plane (the default); false
   * (--insecure): an open nats-server, for debugging.
   */
  secure: boolean;
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
    /** What `outpost-control-plane setup` writes: nats-auth.conf, accounts.json, creds, signing keys (secrets 0600). */
    natsAuth: join(dataDir, 'nats', 'auth'),
    /** The throwaway CA and the server's certificate and key. */
    natsTls: join(dataDir, 'nats', 'tls'),
    logs: join(dataDir, 'logs'),
    controlPlaneConfig: join(dataDir, 'control-plane.json'),
    agents: join(dataDir, 'agents'),
    agentConfig: (agentId: string) => join(dataDir, 'agents', `${agentId}.json`),
    /** The agent's enrolment bundle (0600): beside its config, so a restarted agent keeps it. */
    agentBundle: (agentId: string) => join(dataDir, 'agents', `${agentId}.bundle.json`),
    agentData: (agentId: string) => join(dataDir, 'agents', agentId),
    /** The model's .onnx copy and its signed manifest. */
    models: join(dataDir, 'models'),
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

/** How the control plane reaches NATS: the open server's URL, or the secured one's with its connection and enrolment settings. */
export interface DemoNatsAccess {
  url: string;
  /** Undefined: an open server (--insecure). */
  security: Pick<ControlPlaneConfigInput, 'nats' | 'security'> | undefined;
}

/**
 * The control plane's config: the demo's NATS (its creds, CA and enrolment keys when secured),
 * the chosen HTTP port, quiet logs, the API closed to all but the demo's operator token (stored
 * as its SHA-256, as an operator would), and `trustedKeys` as the keys model uploads must be
 * signed with (enrolment bundles hand them to the agents).
 */
export function controlPlaneConfig(nats: DemoNatsAccess, httpPort: number, operatorToken: string, trustedKeys: readonly TrustedKey[]): ControlPlaneConfigInput {
  const sha256 = createHash('sha256').update(operatorToken).digest('hex');
  const config: ControlPlaneConfigInput = {
    nats: { servers: [nats.url], ...nats.security?.nats, name: 'outpost-demo-control-plane' },
    ...(nats.security?.security === undefined ? {} : { security: nats.security.security }),
    http: { host: '127.0.0.1', port: httpPort, auth: { tokens: [{ name: DEMO_OPERATOR_TOKEN_NAME, sha256 }] } },
    rollouts: { trustedKeys: [...trustedKeys] },
    log: { level: 'warn' },
  };
  parseConfig(ControlPlaneConfigSchema, config, 'demo control-plane config');
  return config;
}

/** The model files the agents load, and the key that signed its manifest. */
export interface DemoModel {
  ref: ModelRef;
  /** A copy of the shipped .onnx in the data dir: a model rebuild while the demo runs changes nothing. */
  onnxPath: string;
  signedManifestPath: string;
  /** Samples per feature window: a device's first result comes after this many messages. */
  windowSamples: number;
  /** The dev key's private file (its public half is in `trustedKey`). */
  keyFile: string;
  /** True when this start created the dev key. */
  keyGenerated: boolean;
  trustedKey: TrustedKey;
}

/**
 * Reads the dev signing key, creating it (mode 0600) when missing. Two first uses at once
 * (two demos, or a demo and `npm run -w models sign`) race on creating it: the loser reads
 * the winner's key instead.
 */
async function loadDevSigningKey(keyFile: string): Promise<SigningKeyFile> {
  try {
    try {
      return await loadOrCreateSigningKey(keyFile, { generate: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      return await loadOrCreateSigningKey(keyFile, { generate: false });
    }
  } catch (cause) {
    throw new Error(
      `dev signing key ${keyFile}: ${(cause as Error).message} (it must be an ed25519 PKCS#8 PEM key; remove the file and the demo makes a new one, then re-sign any manifest signed with the old one)`,
      { cause },
    );
  }
}

/**
 * Prepares the demo's model in `<dataDir>/models`: copies the shipped .onnx and writes its
 * manifest signed with the dev key (`keyFile`, default DEV_SIGNING_KEY_FILE, created on first
 * use). Refuses an expired manifest here, where the fix can be named, rather than letting
 * every agent refuse it.
 *
 * @throws OutpostError MODEL_INVALID when the shipped manifest is not valid; Error naming the
 *   key file when the dev key cannot be read or made, or when the shipped manifest has
 *   expired (the message says how to rebuild it).
 */
export async function prepareDemoModel(dataDir: string, keyFile: string = DEV_SIGNING_KEY_FILE, nowMs: number = Date.now()): Promise<DemoModel> {
  const shipped = artifactFiles(ARTIFACTS_DIR, DEMO_MODEL.name, DEMO_MODEL.version);
  const manifest = await readManifestFile(shipped.manifest);
  if (!(nowMs <= Date.parse(manifest.expiresAt))) {
    throw new Error(
      `the shipped model ${manifest.name}@${manifest.version} expired at ${manifest.expiresAt} and agents would refuse it: ` +
        'rebuild it with `npm run -w models build -- --created-at <today>` (models/README.md), or start the demo with --no-inference',
    );
  }
  const dir = demoPaths(dataDir).models;
  await mkdir(dir, { recursive: true });
  const files = artifactFiles(dir, DEMO_MODEL.name, DEMO_MODEL.version);
  await copyFile(shipped.onnx, files.onnx);
  const { signed, key } = await signManifestFile({ manifestFile: shipped.manifest, key: () => loadDevSigningKey(keyFile), outFile: files.signed });
  return {
    ref: { name: signed.manifest.name, version: signed.manifest.version },
    onnxPath: files.onnx,
    signedManifestPath: files.signed,
    windowSamples: signed.manifest.featureSpec.windowSize,
    keyFile: key.keyFile,
    keyGenerated: key.generated,
    trustedKey: key.trustedKey,
  };
}

/** `name@version`, as agents report the model they run (heartbeat, /healthz). */
export function formatModelRef(ref: ModelRef): string {
  return `${ref.name}@${ref.version}`;
}

/**
 * Where an agent's uplink goes: its enrolment bundle (secured NATS: servers, creds, CA, inbox
 * prefix, labels and trusted model keys), or an open server's URL (--insecure).
 */
export type DemoUplink = { enrollmentFile: string } | { servers: string[] };

/**
 * One agent's config: embedded broker on a free port with a password per device (scrypt
 * hashes made here), uplink to the demo's NATS, metrics on a free port, quiet logs, and local
 * inference with `model` (trusting only the key that signed it); none without a model. With an
 * enrolment bundle, the labels and the trusted key come from the bundle; without, from here.
 */
export async function agentConfig(
  plan: DemoAgentPlan,
  uplink: DemoUplink,
  dataDir: string,
  passwords: Record<string, string>,
  model: DemoModel | undefined,
): Promise<AgentConfigInput> {
  const ids = [...plan.deviceIds, ...(plan.hasManualDevice ? [MANUAL_DEVICE_ID] : [])];
  const devices = await Promise.all(ids.map(async (id) => ({ id, passwordHash: await hashPassword(passwords[id] as string) })));
  const enrolled = 'enrollmentFile' in uplink;
  const config: AgentConfigInput = {
    agentId: plan.agentId,
    dataDir: demoPaths(dataDir).agentData(plan.agentId),
    ...(enrolled ? {} : { labels: plan.labels }),
    broker: { mode: 'embedded', host: '127.0.0.1', port: 0, allowAnonymous: false, devices },
    uplink: { ...uplink, heartbeatIntervalMs: DEMO_HEARTBEAT_INTERVAL_MS },
    inference:
      model === undefined
        ? { enabled: false }
        : { enabled: true, model: { onnxPath: model.onnxPath, manifestPath: model.signedManifestPath }, ...(enrolled ? {} : { trustedKeys: [model.trustedKey] }) },
    http: { host: '127.0.0.1', port: 0 },
    log: { level: 'warn' },
  };
  parseConfig(AgentConfigSchema, config, `demo agent config ${plan.agentId}`);
  return config;
}

/**
 * The agent's config with the ports it bound on its first start (it was given port 0: any free
 * one) instead of 0, so that a restart binds the same ones: its devices and simulator reconnect
 * to the address they have, and /healthz stays where it was.
 */
export function pinAgentPorts(config: AgentConfigInput, ports: { mqttPort: number; httpPort: number }): AgentConfigInput {
  const broker = config.broker?.mode === 'embedded' ? { ...config.broker, port: ports.mqttPort } : config.broker;
  const pinned: AgentConfigInput = { ...config, broker, http: { ...config.http, port: ports.httpPort } };
  parseConfig(AgentConfigSchema, pinned, `demo agent config ${config.agentId}`);
  return pinned;
}

/**
 * The simulator's command line for one agent's devices; with `durationS`, the simulator ends
 * after that many seconds of traffic (its JSON summary, PUBACKed seqs per device included, is
 * the last line of its log).
 */
export function simulatorArgs(plan: DemoAgentPlan, mqttUrl: string, credentialsFile: string, ratePerS: number, durationS?: number): string[] {
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
    '--rate',
    String(ratePerS),
    ...(durationS === undefined ? [] : ['--duration', String(durationS)]),
  ];
}
