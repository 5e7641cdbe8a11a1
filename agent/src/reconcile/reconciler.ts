// The agent's side of rollouts (DESIGN section 3): learn the desired state (at start, on every
// (re)connect, on a notice, and every `recheckMs` as the safety net), apply it, report what it
// did. A change is checked whole before anything changes: the config (every key, by path), then
// the model (fetched from the model store, verified, self-tested and swapped in); only then does
// the config change live. What was applied is kept on disk, so a restart runs it again.
import {
  compareModelVersions,
  configVersion,
  desiredNoticeSubject,
  DesiredReplySchema,
  desiredServiceSubject,
  ErrorCode,
  isOutpostError,
  modelServiceSubject,
  SERVICE_ERROR_HEADER,
  TOTAL_BYTES_HEADER,
  writeFileAtomic,
  type AgentConfig,
  type DesiredReport,
  type DesiredState,
  type Logger,
  type ModelRef,
} from '@outpost/shared';
import type { ModelInput } from '../inference/index.js';
import { readModelFiles } from '../inference/index.js';
import { cachedModelFiles, writeAppliedState, type AppliedState } from './applied-state.js';
import { listenerRestartChanges, resolveManagedConfig } from './managed-config.js';

/** How often the agent reads its desired state even without a notice, ms. */
export const DEFAULT_DESIRED_RECHECK_MS = 30_000;

/** How long one request to the control plane may take, ms. */
export const SERVICE_REQUEST_TIMEOUT_MS = 10_000;
/** A model file larger than this is refused before it is fetched. */
const MAX_MODEL_FILE_BYTES = 256 * 1024 * 1024;

/** What the reconciler needs of the NATS link (the uplink transport provides it). */
export interface DesiredSource {
  connected(): boolean;
  onEvent(listener: (event: { type: string }) => void): void;
  request(subject: string, payload: Uint8Array, timeoutMs: number): Promise<{ data: Uint8Array; header(name: string): string | undefined }>;
  subscribe(subject: string, listener: () => void): void;
}

/** What the reconciler changes in the running agent. */
export interface LiveAgent {
  /** The config from the agent's own file: patches apply over it. */
  readonly baseConfig: AgentConfig;
  /** The config running now. */
  currentConfig(): AgentConfig;
  /** Takes a validated config live; `closeConnections` when a listener-restart key changed. */
  applyConfig(next: AgentConfig, closeConnections: boolean): void;
  /** The model serving now; undefined without inference or before a model loaded. */
  runningModel(): ModelRef | undefined;
  /** Verifies, self-tests and swaps in a model. @throws OutpostError with the refusal's code. */
  swapModel(input: ModelInput): Promise<unknown>;
}

export interface ReconcilerOptions {
  agentId: string;
  dataDir: string;
  source: DesiredSource;
  live: LiveAgent;
  /** What was applied before this process started. */
  initial: AppliedState | undefined;
  /** Called with every new report (the heartbeat carries it; send one now). */
  onReport(report: DesiredReport): void;
  logger: Logger;
  recheckMs?: number;
  now?: () => number;
}

export interface Reconciler {
  /** The latest report, for the heartbeat. */
  report(): DesiredReport | undefined;
  /** Version of the config patch running (`local` without one). */
  configVersion(): string;
  /** Reads the desired state again now. */
  kick(): void;
  close(): Promise<void>;
}

type Refusal = { code: string; reason: string };

export function startReconciler(options: ReconcilerOptions): Reconciler {
  const { agentId, dataDir, source, live, logger } = options;
  const now = options.now ?? Date.now;
  let applied = options.initial;
  let lastRevision = options.initial?.revision;
  let lastReport = options.initial?.report;
  let running: Promise<void> | undefined;
  let again = false;
  let closed = false;

  const refuse = (code: string, reason: string): Refusal => ({ code, reason });

  /** One file of a model from the control plane's model service, chunk by chunk; undefined when the store has none. */
  async function fetchFile(wanted: NonNullable<DesiredState['model']>, file: 'manifest' | 'onnx'): Promise<Uint8Array | undefined> {
    const chunks: Uint8Array[] = [];
    let offset = 0;
    for (;;) {
      const request = { name: wanted.name, version: wanted.version, file, offset };
      const reply = await source.request(modelServiceSubject(agentId), Buffer.from(JSON.stringify(request)), SERVICE_REQUEST_TIMEOUT_MS);
      const error = reply.header(SERVICE_ERROR_HEADER);
      if (error === ErrorCode.MODEL_NOT_FOUND) return undefined;
      if (error !== undefined) throw new Error(`model service refused: ${error} ${Buffer.from(reply.data).toString('utf8')}`);
      const total = Number(reply.header(TOTAL_BYTES_HEADER));
      if (!Number.isSafeInteger(total) || total < 0 || total > MAX_MODEL_FILE_BYTES) throw new Error(`model service answered a total of ${String(reply.header(TOTAL_BYTES_HEADER))} bytes`);
      chunks.push(reply.data);
      offset += reply.data.byteLength;
      if (offset >= total || reply.data.byteLength === 0) break;
    }
    return Buffer.concat(chunks);
  }

  /** The model files of `wanted`, from the store, checked to be the ones the desired state names. */
  async function fetchModel(wanted: NonNullable<DesiredState['model']>): Promise<{ input: ModelInput; manifestBytes: Uint8Array; onnx: Uint8Array } | Refusal> {
    const manifestBytes = await fetchFile(wanted, 'manifest');
    const onnx = manifestBytes === undefined ? undefined : await fetchFile(wanted, 'onnx');
    if (manifestBytes === undefined || onnx === undefined) return refuse(ErrorCode.MODEL_NOT_FOUND, `model ${wanted.name}@${wanted.version} is not in the model store`);
    let signed: unknown;
    try {
      signed = JSON.parse(Buffer.from(manifestBytes).toString('utf8'));
    } catch {
      return refuse(ErrorCode.MODEL_INVALID, `the stored manifest of ${wanted.name}@${wanted.version} is not JSON`);
    }
    const manifest = (signed as { manifest?: { name?: unknown; version?: unknown; artifact?: { sha256?: unknown } } } | null)?.manifest;
    if (manifest?.name !== wanted.name || manifest.version !== wanted.version) {
      return refuse(ErrorCode.MODEL_INVALID, `the store holds ${String(manifest?.name)}@${String(manifest?.version)} where ${wanted.name}@${wanted.version} should be`);
    }
    if (manifest.artifact?.sha256 !== wanted.sha256) {
      return refuse(ErrorCode.MODEL_DIGEST_MISMATCH, `the stored manifest of ${wanted.name}@${wanted.version} names sha256 ${String(manifest.artifact?.sha256)}, the desired state ${wanted.sha256}`);
    }
    return { input: { signedManifest: signed, onnxBytes: onnx }, manifestBytes, onnx };
  }

  /** Brings the model to what `desired` asks; a refusal leaves the running model in place. */
  async function ensureModel(desired: DesiredState): Promise<Refusal | undefined> {
    const running = live.runningModel();
    const wanted = desired.model;
    if (wanted === null) {
      // Back to the model of the agent's own config (a rollback past the first rolled-out model).
      const local = live.baseConfig.inference.model;
      if (!live.baseConfig.inference.enabled || local === undefined) return undefined;
      const input = await readModelFiles(local);
      const manifest = (input.signedManifest as { manifest?: ModelRef } | null)?.manifest;
      if (manifest !== undefined && running?.name === manifest.name && running.version === manifest.version) return undefined;
      await live.swapModel(input);
      return undefined;
    }
    if (!live.baseConfig.inference.enabled) return refuse(ErrorCode.INFERENCE_UNAVAILABLE, "inference is not enabled in this agent's own config");
    if (running?.name === wanted.name && running.version === wanted.version) return undefined;
    if (running?.name === wanted.name && compareModelVersions(wanted.version, running.version) < 0 && !wanted.rollback) {
      return refuse(ErrorCode.MODEL_VERSION_OLDER, `${wanted.name}@${wanted.version} is older than the running ${running.version}, and the desired state is no rollback`);
    }
    const fetched = await fetchModel(wanted);
    if ('code' in fetched) return fetched;
    await live.swapModel(fetched.input);
    // Cached only once verified and serving: a restart loads it from here, verified again.
    const files = cachedModelFiles(dataDir, wanted.name, wanted.version);
    await writeFileAtomic(files.onnxPath, fetched.onnx);
    await writeFileAtomic(files.manifestPath, fetched.manifestBytes);
    return undefined;
  }

  async function apply(desired: DesiredState, revision: number): Promise<DesiredReport> {
    const report = (status: DesiredReport['status'], refusal?: Refusal): DesiredReport => ({
      revision,
      status,
      ...(refusal === undefined ? {} : { code: refusal.code, reason: refusal.reason.slice(0, 1_000) }),
      origin: desired.origin,
      atMs: now(),
    });
    const resolved = resolveManagedConfig(live.baseConfig, desired.config?.patch ?? null);
    if (!resolved.ok) return report('refused', resolved);
    const restart = listenerRestartChanges(live.currentConfig(), resolved.config);
    if (restart.length > 0 && !desired.allowListenerRestart) {
      return report('refused', refuse(ErrorCode.CONFIG_NEEDS_RESTART, `${restart.join(', ')} reaches only new device connections; the rollout must allow closing them (change.allowListenerRestart)`));
    }
    try {
      const refusal = await ensureModel(desired);
      if (refusal !== undefined) return report('refused', refusal);
    } catch (err) {
      return report('refused', refuse(isOutpostError(err) ? err.code : ErrorCode.INTERNAL_ERROR, (err as Error).message));
    }
    live.applyConfig(resolved.config, restart.length > 0);
    return report('applied');
  }

  async function reconcile(): Promise<void> {
    if (!source.connected()) return;
    const reply = await source.request(desiredServiceSubject(agentId), new Uint8Array(0), SERVICE_REQUEST_TIMEOUT_MS);
    let value: unknown;
    try {
      value = JSON.parse(Buffer.from(reply.data).toString('utf8'));
    } catch {
      value = undefined;
    }
    const parsed = DesiredReplySchema.safeParse(value);
    if (!parsed.success) throw new Error(`the desired-state service answered something else: ${reply.header(SERVICE_ERROR_HEADER) ?? 'not a desired state'}`);
    const { revision, desired } = parsed.data;
    if (desired === null || revision === lastRevision) return;
    let report: DesiredReport;
    if (desired.agentId !== agentId) {
      report = { revision, status: 'refused', code: ErrorCode.REQUEST_INVALID, reason: 'the desired state names another agent', origin: null, atMs: now() };
    } else {
      report = await apply(desired, revision);
      if (report.status === 'applied') {
        applied = { revision, desired, report };
        await writeAppliedState(dataDir, applied);
      }
    }
    lastRevision = revision;
    lastReport = report;
    logger[report.status === 'applied' ? 'info' : 'warn']({ revision: report.revision, status: report.status, code: report.code, reason: report.reason, origin: report.origin }, `desired state ${report.status}`);
    options.onReport(report);
  }

  const kick = (): void => {
    if (closed) return;
    if (running !== undefined) {
      again = true;
      return;
    }
    running = (async () => {
      do {
        again = false;
        await reconcile().catch((err: unknown) => logger.warn({ err }, 'reading or applying the desired state failed; tried again later'));
      } while (again && !closed);
    })().finally(() => (running = undefined));
  };

  source.subscribe(desiredNoticeSubject(agentId), kick);
  source.onEvent((event) => {
    if (event.type === 'connected') kick();
  });
  const timer = setInterval(kick, options.recheckMs ?? DEFAULT_DESIRED_RECHECK_MS);
  timer.unref();
  kick();

  return {
    report: () => lastReport,
    configVersion: () => configVersion(applied?.desired.config?.patch ?? null),
    kick,
    async close() {
      closed = true;
      clearInterval(timer);
      await running;
    },
  };
}
