// Entry point of an inference process, forked by model-process.ts. It holds one onnxruntime
// session for one model and nothing else of the agent (no broker, outbox or NATS code), so it
// stays small and its crash costs only the batch it was scoring. Imports: protocol.ts (types
// and pure helpers) and the onnxruntime adapter, nothing more.
import { createScoringSession, type ScoringSession } from './onnx-session.js';
import { ChildErrorCode, checkSelfTest, isParentMessage, type ChildMessage, type LoadRequest, type ScoreRequest } from './protocol.js';

let session: ScoringSession | undefined;
let loading = false;
/** Requests are handled one after the other even if the parent sent two. */
let tail: Promise<void> = Promise.resolve();

function send(message: ChildMessage): void {
  // A parent that went away leaves nothing to serve: the 'disconnect' handler ends us.
  if (process.connected) process.send?.(message);
}

async function load(request: LoadRequest): Promise<void> {
  if (loading || session !== undefined) {
    send({ type: 'load-failed', code: ChildErrorCode.modelInvalid, message: 'this inference process already has a model; a swap uses a new process' });
    return;
  }
  loading = true;
  const startedAt = performance.now();
  let created: ScoringSession;
  try {
    created = await createScoringSession(request.modelBytes, { inputName: request.inputName, outputName: request.outputName, evidenceOutputName: request.evidenceOutputName, rowLength: request.rowLength });
  } catch (err) {
    send({ type: 'load-failed', code: ChildErrorCode.modelInvalid, message: `onnxruntime cannot load the model: ${messageOf(err)}` });
    return;
  }
  let scores: Float32Array;
  try {
    scores = (await created.score(request.testInputs, request.testCount)).scores;
  } catch (err) {
    send({ type: 'load-failed', code: ChildErrorCode.selfTestFailed, message: `the model failed on its test vectors: ${messageOf(err)}` });
    return;
  }
  const check = checkSelfTest(scores, request.expectedScores, request.testTolerance);
  if (!check.ok) {
    send({
      type: 'load-failed',
      code: ChildErrorCode.selfTestFailed,
      message: `test vector ${check.index} scored ${check.score}, the manifest expects ${check.expected} (tolerance ${request.testTolerance})`,
    });
    return;
  }
  session = created;
  send({ type: 'loaded', rssBytes: process.memoryUsage.rss(), loadMs: performance.now() - startedAt, selfTestMaxError: check.maxError, hasEvidence: created.hasEvidence });
}

async function score(request: ScoreRequest): Promise<void> {
  if (session === undefined) {
    send({ type: 'score-failed', batchId: request.batchId, message: 'no model loaded' });
    return;
  }
  try {
    const { scores, evidence } = await session.score(request.rows, request.count);
    send({ type: 'scored', batchId: request.batchId, scores, evidence, rssBytes: process.memoryUsage.rss() });
  } catch (err) {
    send({ type: 'score-failed', batchId: request.batchId, message: messageOf(err) });
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// The agent died or ended us: nothing to finish, the parent owns every row.
process.on('disconnect', () => process.exit(0));
process.on('message', (message: unknown) => {
  if (!isParentMessage(message)) return;
  tail = tail
    .then(() => (message.type === 'load' ? load(message) : score(message)))
    .catch((err: unknown) => {
      // A bug here, not a model problem: exit, and the supervisor restarts the process.
      process.stderr.write(`inference process failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(70);
    });
});
send({ type: 'started', pid: process.pid });
