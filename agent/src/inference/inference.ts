/**
 * The inference stage (DESIGN section 2): committed telemetry -> per-device feature windows ->
 * bounded row queue -> micro-batches -> one onnxruntime call in a supervised child process ->
 * results to the outbox and to local subscribers. Also the hot swap.
 *
 * Rules this file keeps:
 * - Ingest never waits: `observe` is synchronous and O(row); when the queue is full the row is
 *   counted as unscored (`queue-full`) and dropped.
 * - One batch in flight at a time. A swap activates between two batches: the batch in flight
 *   finishes on the old process and is attributed to the old model, the next goes to the new.
 * - A row is delivered at most once: only a batch whose scores came back is delivered. Rows of
 *   a batch whose process died before answering are put back at the front once (they go to
 *   the restarted process); if that process dies too, they are counted `process-lost`.
 * - Feature windows belong to the feature spec: a swap to a model with the same spec keeps
 *   them (and queued rows go to the new model); a different spec starts every device's window
 *   afresh, and rows already queued are still scored by the old model before it ends.
 */
import {
  canonicalJson,
  createFeatureWindow,
  ErrorCode,
  isOutpostError,
  OutpostError,
  type FeatureWindow,
  type MetricValues,
} from '@outpost/shared';
import { createModelSlot, type ModelSlot } from './model-slot.js';
import { startModelProcess, type ModelProcess } from './model-process.js';
import { assertTrustedKeys, readModelFiles, verifyModel, type ModelInput, type VerifiedModel } from './model-source.js';
import type { Inference, InferenceCounts, InferenceOptions, InferenceSettings, InstalledModel } from './inference-types.js';
import { UnscoredReason } from './inference-types.js';
import { metricEvidence } from './episodes.js';
import { createResultSink } from './result-sink.js';
import { createRowQueue } from './row-queue.js';

export * from './inference-types.js';

interface QueuedRow {
  deviceId: string;
  deviceSeq: number | undefined;
  ts: number;
  features: Float32Array;
  /** performance.now() of the commit that completed the row. */
  committedAtMs: number;
  /** The model that will score the row. */
  slot: ModelSlot;
  /** Already sent once to a process that died before answering. */
  retried: boolean;
}

/**
 * Starts the inference of one device kind (one model at a time, hot-swapped; the router in
 * inference-router.ts runs one per kind) and, when `config.model` names files, loads that model
 * before resolving. A model that fails verification or its self-test is logged and counted; the stage
 * still starts (without a model, telemetry is counted `no-model`) so ingest is never held up.
 *
 * @throws OutpostError CONFIG_INVALID when a trusted key is not a usable ed25519 public key.
 */
export async function startModelInference(options: InferenceOptions): Promise<Inference> {
  const { config, metrics, logger } = options;
  assertTrustedKeys(config.trustedKeys);
  const sink = createResultSink({ outbox: options.outbox, publish: options.publish, metrics, logger, upstream: config.upstream, summaryIntervalMs: config.summaryIntervalMs, episodeSilenceMs: config.episodeSilenceMs });
  const settings: InferenceSettings = {
    threshold: config.threshold,
    maxBatchSize: config.maxBatchSize,
    maxBatchWaitMs: config.maxBatchWaitMs,
    maxQueuedRows: config.maxQueuedRows,
  };
  const queue = createRowQueue<QueuedRow>(settings.maxQueuedRows);
  let counts: InferenceCounts | undefined;
  /** Per device, least recently seen first (Map keeps insertion order; a sample re-inserts). */
  const windows = new Map<string, FeatureWindow>();
  /** Slots replaced by a swap whose last rows are still queued or in flight. */
  const retiring = new Set<ModelSlot>();
  let current: ModelSlot | undefined;
  let inFlight: { slot: ModelSlot; done: Promise<void> } | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  let swapTail: Promise<unknown> = Promise.resolve();
  let lastScoreFailureLogMs = -Infinity;

  const unscored = (reason: UnscoredReason, rows = 1): void => {
    if (rows <= 0) return;
    metrics.inferenceUnscored.inc({ reason }, rows);
    // Rows the serving model failed on count against it; a shutdown or no model at all does not.
    if (counts !== undefined && reason !== UnscoredReason.shutdown && reason !== UnscoredReason.noModel) counts.errors += rows;
  };

  const startProcess = (model: VerifiedModel): Promise<ModelProcess> =>
    startModelProcess({ model, entry: options.childEntry, maxOldSpaceMb: config.childMaxOldSpaceMb, loadTimeoutMs: config.selfTestTimeoutMs, logger });

  const updateUp = (): void => {
    metrics.inferenceUp.set(current?.process() === undefined ? 0 : 1);
  };

  const retireDrained = (): void => {
    for (const slot of retiring) {
      // A replaced slot's rows are always a prefix of the queue: they were queued before the swap.
      if (inFlight?.slot === slot || queue.peek()?.slot === slot) continue;
      retiring.delete(slot);
      slot.retire().catch((err: unknown) => logger.error({ err }, 'ending a replaced inference process failed'));
    }
  };

  const maybeDispatch = (): void => {
    if (inFlight !== undefined || closed) return;
    const head = queue.peek();
    if (head === undefined) return;
    const slot = head.slot;
    const proc = slot.process();
    if (proc === undefined) {
      // A replaced model whose process died holds up the new model's rows behind it only
      // until here: its own rows are counted lost, so a failing restart cannot block the queue.
      if (retiring.has(slot)) {
        unscored(UnscoredReason.processLost, queue.dropFrontWhile((row) => row.slot === slot).length);
        retireDrained();
        maybeDispatch();
      }
      // The current model restarting: the slot's onUp calls back here.
      return;
    }
    const waitedMs = performance.now() - head.committedAtMs;
    if (queue.length < settings.maxBatchSize && waitedMs < settings.maxBatchWaitMs) {
      timer ??= setTimeout(() => {
        timer = undefined;
        maybeDispatch();
      }, settings.maxBatchWaitMs - waitedMs);
      return;
    }
    clearTimeout(timer);
    timer = undefined;
    const batch = queue.take(settings.maxBatchSize, (row) => row.slot === slot);
    const done = runBatch(batch, slot, proc)
      .catch((err: unknown) => {
        logger.error({ err }, 'inference batch failed unexpectedly');
        unscored(UnscoredReason.scoreFailed, batch.length);
      })
      .finally(() => {
        inFlight = undefined;
        retireDrained();
        maybeDispatch();
      });
    inFlight = { slot, done };
  };

  async function runBatch(batch: QueuedRow[], slot: ModelSlot, proc: ModelProcess): Promise<void> {
    const { rowLength, ref, manifest } = slot.model;
    const rows = new Float32Array(batch.length * rowLength);
    batch.forEach((row, i) => rows.set(row.features, i * rowLength));
    const outcome = await proc.score(rows, batch.length, config.batchTimeoutMs);
    metrics.inferenceQueuedRows.set(queue.length);
    if (outcome.type === 'scored') {
      const nowMs = performance.now();
      const threshold = settings.threshold ?? manifest.threshold;
      let scored = 0;
      let anomalies = 0;
      batch.forEach((row, i) => {
        const score = outcome.scores[i] ?? Number.NaN;
        if (!Number.isFinite(score)) return unscored(UnscoredReason.invalidScore);
        const anomaly = score > threshold;
        // Which metrics made it anomalous: only flagged windows need it.
        const evidence = anomaly && outcome.evidence !== undefined ? metricEvidence(outcome.evidence.subarray(i * rowLength, (i + 1) * rowLength), manifest.featureSpec) : undefined;
        sink.deliver(row.deviceId, row.deviceSeq, { ts: row.ts, model: ref, score, anomaly }, threshold, evidence);
        metrics.inferenceLatency.observe((nowMs - row.committedAtMs) / 1000);
        scored++;
        if (anomaly) anomalies++;
      });
      if (counts !== undefined && slot === current) {
        counts.rows += scored;
        counts.anomalies += anomalies;
      }
      metrics.inferenceRowsScored.inc(scored);
      metrics.inferenceBatches.inc();
      metrics.inferenceBatchRows.observe(batch.length);
      metrics.inferenceProcessRss.set(proc.rssBytes());
      return;
    }
    if (outcome.type === 'failed') {
      unscored(UnscoredReason.scoreFailed, batch.length);
      if (performance.now() - lastScoreFailureLogMs > 10_000) {
        lastScoreFailureLogMs = performance.now();
        logger.warn({ model: ref, rows: batch.length, reason: outcome.message }, 'the model failed on a batch; its rows are unscored');
      }
      return;
    }
    // process-lost: nothing of this batch was delivered, so a retry cannot score a row twice.
    const retry = batch.filter((row) => !row.retried);
    unscored(UnscoredReason.processLost, batch.length - retry.length);
    for (const row of retry) {
      row.retried = true;
      if (slot !== current && current !== undefined && retiring.has(slot) && sameFeatureSpec(slot.model, current.model)) row.slot = current;
    }
    queue.requeueFront(retry);
  }

  /**
   * Built outside `activate` on purpose: a closure created there would keep activate's whole
   * context, `previous` included, so every slot would retain the one before it (and its
   * ended process) for ever: one leaked ChildProcess per swap.
   */
  function supervise(model: VerifiedModel, proc: ModelProcess): ModelSlot {
    return createModelSlot({
      model,
      initial: proc,
      restart: startProcess,
      backoff: { initialDelayMs: config.restartInitialDelayMs, maxDelayMs: config.restartMaxDelayMs },
      metrics,
      logger,
      onUp: () => {
        updateUp();
        maybeDispatch();
      },
      onDown: updateUp,
    });
  }

  function activate(model: VerifiedModel, proc: ModelProcess): InstalledModel {
    const previous = current;
    const slot = supervise(model, proc);
    let windowsReset = false;
    if (previous !== undefined) {
      if (sameFeatureSpec(previous.model, model)) {
        queue.forEach((row) => {
          if (row.slot === previous) row.slot = slot;
        });
      } else {
        windows.clear();
        windowsReset = true;
      }
      retiring.add(previous);
      metrics.inferenceSwaps.inc();
    }
    current = slot;
    counts = { model: `${model.ref.name}@${model.ref.version}`, sinceMs: Date.now(), rows: 0, anomalies: 0, errors: 0 };
    // Models of other kinds serve beside this one: only the replaced model's series goes.
    if (previous !== undefined) metrics.inferenceModelInfo.remove({ name: previous.model.ref.name, version: previous.model.ref.version });
    metrics.inferenceModelInfo.set({ name: model.ref.name, version: model.ref.version }, 1);
    updateUp();
    retireDrained();
    maybeDispatch();
    return { model: model.ref, previous: previous?.model.ref, pid: proc.pid, windowsReset };
  }

  async function install(load: () => Promise<ModelInput>, what: 'start' | 'swap'): Promise<InstalledModel> {
    try {
      if (closed) throw new OutpostError(ErrorCode.INFERENCE_UNAVAILABLE, 'inference is closed');
      const model = await verifyModel(await load(), { trustedKeys: config.trustedKeys, maxModelBytes: config.maxModelBytes });
      const proc = await startProcess(model);
      if (closed) {
        await proc.close();
        throw new OutpostError(ErrorCode.INFERENCE_UNAVAILABLE, 'inference closed during the model load');
      }
      const installed = activate(model, proc);
      logger.info({ event: what === 'start' ? 'model-loaded' : 'model-swapped', model: installed.model, previous: installed.previous, pid: installed.pid, windowsReset: installed.windowsReset }, `model ${model.ref.name}@${model.ref.version} serving`);
      return installed;
    } catch (err) {
      const code = isOutpostError(err) ? err.code : ErrorCode.INTERNAL_ERROR;
      metrics.inferenceSwapRefusals.inc({ code });
      const serving = current?.model.ref;
      logger.warn({ event: 'model-refused', code, err, serving }, serving === undefined ? 'model refused; no model is serving' : 'model refused; the previous model keeps serving');
      throw isOutpostError(err) ? err : new OutpostError(ErrorCode.INTERNAL_ERROR, `model load failed: ${(err as Error).message}`, { cause: err });
    }
  }

  const enqueueSwap = (load: () => Promise<ModelInput>): Promise<InstalledModel> => {
    const run = swapTail.then(() => install(load, 'swap'));
    swapTail = run.catch(() => undefined);
    return run;
  };

  const modelFiles = config.model;
  if (modelFiles !== undefined) {
    await install(() => readModelFiles(modelFiles), 'start').catch(() => undefined);
  }

  let closing: Promise<void> | undefined;
  return {
    observe(record, committedAtMs) {
      if (closed) return;
      const slot = current;
      if (slot === undefined) return unscored(UnscoredReason.noModel);
      let values: MetricValues;
      try {
        values = (JSON.parse(record.body) as { metrics: MetricValues }).metrics;
      } catch {
        return;
      }
      let window = windows.get(record.deviceId);
      if (window === undefined) {
        if (windows.size >= config.maxDeviceWindows) {
          const oldest = windows.keys().next();
          if (oldest.done !== true) windows.delete(oldest.value);
        }
        window = createFeatureWindow(slot.model.manifest.featureSpec);
      } else windows.delete(record.deviceId);
      windows.set(record.deviceId, window);
      const features = window.push(values);
      if (features === undefined) return;
      const row: QueuedRow = { deviceId: record.deviceId, deviceSeq: record.deviceSeq, ts: record.ts, features, committedAtMs, slot, retried: false };
      if (!queue.push(row)) return unscored(UnscoredReason.queueFull);
      maybeDispatch();
    },
    swapModel: (input) => enqueueSwap(() => Promise.resolve(input)),
    reloadModelFiles() {
      const files = config.model;
      if (files === undefined) {
        return Promise.reject(new OutpostError(ErrorCode.MODEL_INVALID, 'inference.model is not set in the config: there are no model files to reload'));
      }
      return enqueueSwap(() => readModelFiles(files));
    },
    status: () => ({ up: current?.process() !== undefined, model: current?.model.ref, pid: current?.process()?.pid, queuedRows: queue.length, counts: counts === undefined ? undefined : { ...counts } }),
    configure(next) {
      Object.assign(settings, next);
      queue.capacity = next.maxQueuedRows;
      maybeDispatch();
    },
    close() {
      closing ??= (async () => {
        closed = true;
        clearTimeout(timer);
        await inFlight?.done;
        unscored(UnscoredReason.shutdown, queue.clear().length);
        // The open summaries go into the outbox, which closes after inference.
        sink.close();
        await swapTail;
        const slots = [...retiring, ...(current === undefined ? [] : [current])];
        retiring.clear();
        current = undefined;
        await Promise.all(slots.map((slot) => slot.retire()));
        metrics.inferenceUp.set(0);
      })();
      return closing;
    },
  };
}

function sameFeatureSpec(a: VerifiedModel, b: VerifiedModel): boolean {
  return canonicalJson(a.manifest.featureSpec) === canonicalJson(b.manifest.featureSpec);
}
