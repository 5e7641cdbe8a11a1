// The inference stage's public types: what ingest feeds it, what it reports, how it is driven.
import type { InferenceConfig, Logger, ModelRef } from '@outpost/shared';
import type { Outbox } from '../buffer/index.js';
import type { AgentMetrics } from '../metrics.js';
import type { ModelInput } from './model-source.js';
import type { LocalPublish } from './result-sink.js';

/** Why a row (or, for `no-model`, a telemetry message) got no inference result. */
export const UnscoredReason = {
  /** Inference is enabled but no model has loaded yet. */
  noModel: 'no-model',
  /** The row queue was at `maxQueuedRows` (e.g. while the inference process restarted). */
  queueFull: 'queue-full',
  /**
   * The process died with the row in flight, and again after the one retry; or the row was
   * queued for a replaced model whose process died before scoring it.
   */
  processLost: 'process-lost',
  /** The model failed at run time on the batch. */
  scoreFailed: 'score-failed',
  /** The model returned NaN or an infinity. */
  invalidScore: 'invalid-score',
  /** Still queued when the agent stopped. */
  shutdown: 'shutdown',
  /** With models of several kinds serving: a telemetry message of a device whose metrics no model reads (routeDevice). */
  unrouted: 'unrouted',
} as const;
export type UnscoredReason = (typeof UnscoredReason)[keyof typeof UnscoredReason];

/** A telemetry record the outbox has just committed. */
export interface CommittedTelemetry {
  deviceId: string;
  /** The device's own seq, when it sent one. */
  deviceSeq: number | undefined;
  /** Device time, epoch ms. */
  ts: number;
  /** The validated telemetry body as committed (JSON text of `{ ts, seq?, metrics }`). */
  body: string;
}

/** Rows of the serving model since it became active (rollout gates compare models with these). */
export interface InferenceCounts {
  /** `name@version`. */
  model: string;
  /** When the model became active, epoch ms. */
  sinceMs: number;
  rows: number;
  anomalies: number;
  /** Rows that got no score: a failed batch, an invalid score, a lost process, a full queue. */
  errors: number;
}

export interface InferenceStatus {
  /** True while a self-tested model is serving in a live process. */
  up: boolean;
  model: ModelRef | undefined;
  /** The serving inference process. */
  pid: number | undefined;
  queuedRows: number;
  counts: InferenceCounts | undefined;
  /** Every model serving, one per device kind (the router's status; `model` is the one installed last). */
  models?: ModelRef[] | undefined;
}

/** The inference settings a rollout may change while the agent runs. */
export interface InferenceSettings {
  /** Overrides the manifest's threshold; undefined: the manifest's. */
  threshold: number | undefined;
  maxBatchSize: number;
  maxBatchWaitMs: number;
  maxQueuedRows: number;
}

/** What a successful swap (or first load) installed. */
export interface InstalledModel {
  model: ModelRef;
  previous: ModelRef | undefined;
  pid: number;
  /** True when the feature spec changed, so every device's window started afresh. */
  windowsReset: boolean;
}

export interface Inference {
  /** Feeds one committed telemetry record. Synchronous, never throws, never waits. */
  observe(record: CommittedTelemetry, committedAtMs: number): void;
  /**
   * Verifies a model, loads and self-tests it in a new inference process, and switches to it
   * between two batches; the old process ends once its last batch is done. Swaps run one at a
   * time, in call order.
   *
   * @throws OutpostError with the refusal's code (MODEL_INVALID, MODEL_SIGNATURE_INVALID,
   *   MODEL_KEY_UNTRUSTED, MODEL_KEY_INVALID, MODEL_EXPIRED, MODEL_DIGEST_MISMATCH,
   *   MODEL_EXTERNAL_DATA, MODEL_SELF_TEST_FAILED, INFERENCE_UNAVAILABLE); the previous model
   *   keeps serving.
   */
  swapModel(input: ModelInput): Promise<InstalledModel>;
  /** `swapModel` with the files named in `inference.model` (SIGHUP). */
  reloadModelFiles(): Promise<InstalledModel>;
  status(): InferenceStatus;
  /** Takes new settings from the next batch on (a queue made smaller keeps what it holds). */
  configure(settings: InferenceSettings): void;
  /** Finishes the batch in flight, counts queued rows as unscored, ends every inference process. Idempotent. */
  close(): Promise<void>;
}

export interface InferenceOptions {
  config: InferenceConfig;
  /** Where results are appended (kinds `anomaly-opened` and `anomaly-closed`, and `inference-summary` or `inference` as `config.upstream` says). */
  outbox: Outbox;
  publish: LocalPublish;
  metrics: AgentMetrics;
  logger: Logger;
  /** Entry of the inference child; default the built `inference-child.js`. */
  childEntry?: string | undefined;
}

