import { rename, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { buildConstantScoreModel, createManifest } from '@outpost/models';
import { AgentConfigSchema, parseConfig, signManifest, type AgentConfig, type AgentConfigInput, type FeatureSpec, type SignedManifest, type SigningKey, type TrustedKey } from '@outpost/shared';
import { AGENT_NODE_FLAGS, startAgent, type Agent } from '@outpost/agent';
import type { NatsServer } from './nats-server.js';
import { startServiceProcess, type ServiceProcess } from './service-process.js';

/** The built agent entry point; child agents run the JavaScript that `npm run build` wrote. */
export const AGENT_MAIN = fileURLToPath(new URL('../../../agent/dist/main.js', import.meta.url));

/** A test config: ephemeral ports, anonymous devices, quiet logs; override what a test needs. */
export function testAgentConfig(dataDir: string, overrides: Partial<AgentConfigInput> = {}): AgentConfigInput {
  return {
    agentId: 'test-agent',
    dataDir,
    broker: { mode: 'embedded', host: '127.0.0.1', port: 0, allowAnonymous: true },
    http: { host: '127.0.0.1', port: 0 },
    log: { level: 'warn' },
    ...overrides,
  };
}

type UplinkInput = NonNullable<AgentConfigInput['uplink']>;

/**
 * An `uplink` section for agent `agentId`: the server's URL on an open server; on a secured
 * one, an enrolment bundle made for the agent (its own NATS user, the CA).
 */
export async function testUplinkConfig(nats: NatsServer, agentId: string, overrides: Partial<UplinkInput> = {}): Promise<UplinkInput> {
  if (nats.security === undefined) return { servers: [nats.url], ...overrides };
  return { enrollmentFile: await nats.security.enroll(agentId), ...overrides };
}

/** Paths of a model's two files, as `inference.model` names them. */
export interface ModelFilePaths {
  onnxPath: string;
  manifestPath: string;
}

/**
 * Writes `<dir>/<baseName>.onnx` and `<dir>/<baseName>.manifest.json`, each through a temp
 * file and a rename, so an agent reloading them (SIGHUP) never reads half a file.
 */
export async function writeModelFiles(dir: string, baseName: string, onnx: Uint8Array, signedManifest: SignedManifest | unknown): Promise<ModelFilePaths> {
  const onnxPath = join(dir, `${baseName}.onnx`);
  const manifestPath = join(dir, `${baseName}.manifest.json`);
  await writeFile(`${onnxPath}.tmp`, onnx);
  await writeFile(`${manifestPath}.tmp`, JSON.stringify(signedManifest, null, 2));
  await rename(`${onnxPath}.tmp`, onnxPath);
  await rename(`${manifestPath}.tmp`, manifestPath);
  return { onnxPath, manifestPath };
}

/** An `inference` config section for tests: enabled, the given model files and keys; override what a test needs. */
export function testInferenceConfig(model: ModelFilePaths | undefined, trustedKeys: TrustedKey[], overrides: Partial<NonNullable<AgentConfigInput['inference']>> = {}): NonNullable<AgentConfigInput['inference']> {
  return { enabled: true, ...(model === undefined ? {} : { model }), trustedKeys, ...overrides };
}

/**
 * One row per telemetry message that carries a temperature (window 1, hop 1, the raw value):
 * with it every acknowledged message must get exactly one inference result.
 */
export const PER_MESSAGE_FEATURE_SPEC: FeatureSpec = {
  metrics: ['temperature'],
  features: ['last'],
  windowSize: 1,
  hopSize: 1,
  normalisation: { center: [0], scale: [1] },
};

/**
 * A signed model that scores every row `score` over PER_MESSAGE_FEATURE_SPEC, named
 * `constant@<version>`: distinct scores tell which model produced a result.
 */
export function signedConstantModel(score: number, version: string, key: SigningKey, options: { threshold?: number; expiresAt?: string } = {}): { onnx: Uint8Array; signed: SignedManifest } {
  const onnx = buildConstantScoreModel(1, score);
  const manifest = createManifest({
    name: 'constant',
    version,
    createdAt: '2026-01-01T00:00:00.000Z',
    expiresAt: options.expiresAt ?? '2036-01-01T00:00:00.000Z',
    onnx,
    featureSpec: PER_MESSAGE_FEATURE_SPEC,
    threshold: options.threshold ?? 1e9,
    testVectors: [{ input: [1], expectedScore: Math.fround(score) }],
  });
  return { onnx, signed: signManifest(manifest, key.privateKeyPem, key.keyId) };
}

/** Starts an agent inside the test process. */
export async function startInProcessAgent(input: AgentConfigInput): Promise<Agent> {
  const config: AgentConfig = parseConfig(AgentConfigSchema, input, 'test agent config');
  return startAgent(config);
}

export interface AgentProcess extends ServiceProcess {
  readonly mqttPort: number | undefined;
  readonly tlsPort: number | undefined;
  readonly httpPort: number;
  readonly epoch: string;
}

/**
 * Runs `outpost-agent --config <file>` as a child process (the built JavaScript) and waits
 * for its ready line. The config is written next to the data dir as JSON.
 */
export async function startAgentProcess(input: AgentConfigInput, options: { timeoutMs?: number } = {}): Promise<AgentProcess> {
  const service = await startServiceProcess({
    main: AGENT_MAIN,
    config: input,
    configFile: join(input.dataDir, '..', `${input.agentId}-${Date.now()}-${process.hrtime.bigint()}.json`),
    readyEvent: 'agent-ready',
    timeoutMs: options.timeoutMs,
    nodeFlags: AGENT_NODE_FLAGS,
  });
  const r = service.ready;
  return Object.assign(service, {
    mqttPort: r['mqttPort'] as number | undefined,
    tlsPort: r['tlsPort'] as number | undefined,
    httpPort: r['httpPort'] as number,
    epoch: r['epoch'] as string,
  });
}
