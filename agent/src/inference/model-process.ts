import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode, EVIDENCE_OUTPUT_NAME, OutpostError, type Logger } from '@outpost/shared';
import type { VerifiedModel } from './model-source.js';
import { isChildMessage, type ChildMessage, type LoadRequest, type ParentMessage } from './protocol.js';

/** After SIGTERM, a process that has not exited within this long gets SIGKILL, ms. */
const KILL_GRACE_MS = 2_000;
/** Bytes of a child's stderr kept for the error message of a failed start. */
const STDERR_TAIL_BYTES = 2_000;

/**
 * The inference child's entry point. The built agent forks the sibling `inference-child.js`;
 * under vitest the agent runs from its TypeScript sources, which node cannot fork, so the
 * child comes from the build (`npm run build` first), the same as every process a test spawns.
 */
export function defaultChildEntry(): string {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.js')) return join(dirname(here), 'inference-child.js');
  return here.replace(/([\\/])src([\\/]inference[\\/])[^\\/]+\.ts$/, '$1dist$2inference-child.js');
}

/**
 * Node flags of an inference process, and only these: the parent's (a --cpu-prof, an --import
 * preload) must not follow it in, and NODE_OPTIONS is dropped for the same reason. The child
 * runs a few lines of JavaScript around one native call, so it needs no JIT: --jitless (with
 * wasm off, which it requires) and a 1 MB young generation keep its heap from growing with the
 * typed arrays IPC delivers (measured: RssAnon 22 MB instead of 42 MB after 3,000 batches of
 * 256 rows, and no slower per batch).
 */
export function childExecArgv(maxOldSpaceMb: number): string[] {
  return ['--jitless', '--no-expose-wasm', '--max-semi-space-size=1', `--max-old-space-size=${maxOldSpaceMb}`];
}

export interface ModelProcessOptions {
  model: VerifiedModel;
  /** Path of the child entry; default {@link defaultChildEntry}. */
  entry?: string | undefined;
  /** V8 old-space limit of the child, MB. */
  maxOldSpaceMb: number;
  /** Fork, model load and self-test together, ms. */
  loadTimeoutMs: number;
  logger: Logger;
}

/** How one scoring call ended: a discriminated union, since the caller branches on it. */
export type ScoreOutcome =
  /** `evidence`: per-feature evidence, `count` rows of the row length, when the model's graph gives it. */
  | { type: 'scored'; scores: Float32Array; evidence: Float32Array | undefined }
  /** The process died (or was killed after `timeoutMs`) before answering: nothing was scored. */
  | { type: 'process-lost'; reason: 'exited' | 'timeout' }
  /** The process answered with an error (a model that fails at run time on this input). */
  | { type: 'failed'; message: string };

export interface ModelProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** True when close() ended it; false for a crash, a kill from outside or an OOM. */
  requested: boolean;
}

/** One live inference process with one loaded, self-tested model. */
export interface ModelProcess {
  readonly pid: number;
  readonly model: VerifiedModel;
  /** Resident set size the child reported last (with its latest batch), bytes. */
  rssBytes(): number;
  /** Sends one batch; at most one should be outstanding (the child works through them in order anyway). */
  score(rows: Float32Array, count: number, timeoutMs: number): Promise<ScoreOutcome>;
  /** Resolves once the process has exited, whoever ended it. */
  readonly exited: Promise<ModelProcessExit>;
  /** Ends the process (SIGTERM, SIGKILL after a grace period) and resolves when it is gone. Idempotent. */
  close(): Promise<void>;
}

/**
 * Forks an inference process, sends it the verified model bytes, and resolves once the child
 * has created its session and passed the manifest's self-test. On any failure the child is
 * killed before the promise rejects.
 *
 * @throws OutpostError MODEL_INVALID (onnxruntime refused the model), MODEL_SELF_TEST_FAILED,
 *   INFERENCE_UNAVAILABLE (the process could not start, died or exceeded `loadTimeoutMs`).
 */
export async function startModelProcess(options: ModelProcessOptions): Promise<ModelProcess> {
  const { model, logger, loadTimeoutMs } = options;
  const entry = options.entry ?? defaultChildEntry();
  if (!existsSync(entry)) {
    throw new OutpostError(ErrorCode.INFERENCE_UNAVAILABLE, `inference process entry ${entry} is missing (is the agent built?)`, { details: { entry } });
  }
  const env = { ...process.env };
  delete env['NODE_OPTIONS'];
  const child = fork(entry, [], {
    serialization: 'advanced',
    execArgv: childExecArgv(options.maxOldSpaceMb),
    env,
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  let stderrTail = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderrTail = (stderrTail + chunk).slice(-STDERR_TAIL_BYTES);
    for (const line of chunk.split('\n')) if (line.trim() !== '') logger.warn({ pid: child.pid, line: line.slice(0, 500) }, 'inference process stderr');
  });

  let closeRequested = false;
  // A fork that fails (EAGAIN, ENOMEM) emits 'error' and no 'exit': it counts as exited too.
  const spawnFailed = new Promise<Error>((resolve) => child.once('error', resolve));
  const exited = new Promise<ModelProcessExit>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal, requested: closeRequested }));
    void spawnFailed.then(() => {
      if (child.pid === undefined) resolve({ code: null, signal: null, requested: closeRequested });
    });
  });
  const close = (): Promise<void> => {
    closeRequested = true;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
      void exited.finally(() => clearTimeout(timer));
    }
    return exited.then(() => undefined);
  };

  try {
    const loaded = await loadModel(child, model, loadTimeoutMs, exited, spawnFailed, () => stderrTail);
    return createHandle(child, model, loaded.rssBytes, exited, close);
  } catch (err) {
    await close();
    throw err;
  }
}

async function loadModel(
  child: ChildProcess,
  model: VerifiedModel,
  timeoutMs: number,
  exited: Promise<ModelProcessExit>,
  spawnFailed: Promise<Error>,
  stderrTail: () => string,
): Promise<Extract<ChildMessage, { type: 'loaded' }>> {
  const unavailable = (message: string, cause?: unknown): OutpostError =>
    new OutpostError(ErrorCode.INFERENCE_UNAVAILABLE, message, { cause, details: { model: model.ref, stderr: stderrTail() } });
  let timer: NodeJS.Timeout | undefined;
  let onMessage: ((message: unknown) => void) | undefined;
  try {
    return await new Promise((resolve, reject) => {
      timer = setTimeout(() => reject(unavailable(`inference process did not load and self-test ${refText(model)} within ${timeoutMs} ms`)), timeoutMs);
      void exited.then(({ code, signal }) => reject(unavailable(`inference process exited during load of ${refText(model)} (code ${code}, signal ${signal}): ${stderrTail().trim()}`)));
      void spawnFailed.then((err) => reject(unavailable(`cannot start an inference process: ${err.message}`, err)));
      onMessage = (message: unknown): void => {
        if (!isChildMessage(message)) return;
        if (message.type === 'started') send(child, buildLoadRequest(model));
        else if (message.type === 'loaded') resolve(message);
        else if (message.type === 'load-failed') {
          reject(new OutpostError(message.code as ErrorCode, `model ${refText(model)} refused: ${message.message}`, { details: { model: model.ref } }));
        }
      };
      child.on('message', onMessage);
    });
  } finally {
    clearTimeout(timer);
    if (onMessage !== undefined) child.off('message', onMessage);
  }
}

function buildLoadRequest(model: VerifiedModel): LoadRequest {
  const { manifest } = model;
  const rowLength = model.rowLength;
  const testInputs = new Float32Array(manifest.testVectors.length * rowLength);
  manifest.testVectors.forEach((vector, i) => testInputs.set(vector.input, i * rowLength));
  return {
    type: 'load',
    modelBytes: model.bytes,
    inputName: manifest.input.name,
    outputName: manifest.output.name,
    evidenceOutputName: EVIDENCE_OUTPUT_NAME,
    rowLength,
    testInputs,
    testCount: manifest.testVectors.length,
    expectedScores: Float64Array.from(manifest.testVectors, (v) => v.expectedScore),
    testTolerance: manifest.testTolerance,
  };
}

function send(child: ChildProcess, message: ParentMessage): void {
  // A send to a process that just died fails; its 'exit' settles whatever waited on it.
  if (child.connected) child.send(message, (err) => void err);
}

function createHandle(
  child: ChildProcess,
  model: VerifiedModel,
  initialRssBytes: number,
  exited: Promise<ModelProcessExit>,
  close: () => Promise<void>,
): ModelProcess {
  let rssBytes = initialRssBytes;
  let nextBatchId = 1;
  const waiting = new Map<number, (outcome: ScoreOutcome) => void>();
  let gone = false;
  child.on('message', (message: unknown) => {
    if (!isChildMessage(message)) return;
    if (message.type === 'scored' || message.type === 'score-failed') {
      const settle = waiting.get(message.batchId);
      if (settle === undefined) return;
      waiting.delete(message.batchId);
      if (message.type === 'scored') {
        rssBytes = message.rssBytes;
        settle({ type: 'scored', scores: message.scores, evidence: message.evidence });
      } else settle({ type: 'failed', message: message.message });
    }
  });
  void exited.then(() => {
    gone = true;
    for (const settle of waiting.values()) settle({ type: 'process-lost', reason: 'exited' });
    waiting.clear();
  });
  return {
    pid: child.pid ?? -1,
    model,
    rssBytes: () => rssBytes,
    exited,
    close,
    score(rows, count, timeoutMs) {
      if (gone) return Promise.resolve({ type: 'process-lost', reason: 'exited' });
      const batchId = nextBatchId++;
      return new Promise<ScoreOutcome>((resolve) => {
        const timer = setTimeout(() => {
          if (!waiting.delete(batchId)) return;
          // A hung or overloaded process: end it (the supervisor restarts it); a late answer is ignored.
          child.kill('SIGKILL');
          resolve({ type: 'process-lost', reason: 'timeout' });
        }, timeoutMs);
        waiting.set(batchId, (outcome) => {
          clearTimeout(timer);
          resolve(outcome);
        });
        send(child, { type: 'score', batchId, rows, count });
      });
    },
  };
}

function refText(model: VerifiedModel): string {
  return `${model.ref.name}@${model.ref.version}`;
}
