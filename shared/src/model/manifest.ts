import { z } from 'zod';
import { ErrorCode, OutpostError } from '../errors.js';
import { METRIC_NAME_PATTERN, ModelRefSchema } from '../schemas/device.js';

/**
 * The model contract (DESIGN sections 2 and 3): what the agent computes from a device's
 * telemetry before calling a model, and the signed manifest that travels with every .onnx
 * file. The agent trusts a model only after its bytes match `artifact.sha256` and the manifest's
 * signature verifies with a key from its config.
 */

/** Window statistics the agent can compute per metric. */
export const WindowFeature = {
  mean: 'mean',
  std: 'std',
  min: 'min',
  max: 'max',
  last: 'last',
  /** Least-squares slope per sample over the window. */
  slope: 'slope',
  /**
   * Population standard deviation of the successive differences x_i - x_{i-1} (W - 1 of
   * them; 0 when W = 1): the sample-to-sample noise with any linear trend removed. 0 for a
   * stuck sensor, which `std` cannot tell from a quiet one while the process drifts.
   */
  diffStd: 'diffStd',
  /** Longest run of identical consecutive values in the window, in samples (1 when no two are equal): a stuck sensor. */
  run: 'run',
  // The features below compare the window with the device's own history: they need the spec's
  // `baseline` (see BaselineSpecSchema and baseline.ts) and are 0 until it has warmed up.
  /** Largest |x_i - x_{i-1}| in the window over the device's typical sample-to-sample change: a spike, a dropout. */
  jump: 'jump',
  /** Natural log of diffStd over the device's typical sample-to-sample change: a noise burst. */
  noise: 'noise',
  /** Least-squares slope over the window, in units of the device's typical slope: a drift's ramp. */
  trend: 'trend',
  /**
   * How far the window mean lies from the device's own baseline, in that baseline's standard
   * deviations, for the 1st, 2nd, 3rd of `baseline.levelTimeConstants`. With a regression, the
   * baseline is of what the other metrics do not explain (a drift of one metric, not the load
   * every metric follows).
   */
  level0: 'level0',
  level1: 'level1',
  level2: 'level2',
  /** The window mean's deviation from what the device's own regression on its other metrics predicts, in the regression's residual standard deviations. */
  residual: 'residual',
} as const;
export type WindowFeature = (typeof WindowFeature)[keyof typeof WindowFeature];
export const WindowFeatureSchema = z.enum([
  WindowFeature.mean,
  WindowFeature.std,
  WindowFeature.min,
  WindowFeature.max,
  WindowFeature.last,
  WindowFeature.slope,
  WindowFeature.diffStd,
  WindowFeature.run,
  WindowFeature.jump,
  WindowFeature.noise,
  WindowFeature.trend,
  WindowFeature.level0,
  WindowFeature.level1,
  WindowFeature.level2,
  WindowFeature.residual,
]);

/** Features computed against the device's own history: a spec with one of them needs `baseline`. */
export const BASELINE_FEATURES: readonly WindowFeature[] = ['jump', 'noise', 'trend', 'level0', 'level1', 'level2', 'residual'];

/** Most metrics a spec with a baseline may name: its per-device regression solves a system per metric and sample. */
export const MAX_BASELINE_METRICS = 8;

const SampleCount = z.number().int().min(1).max(10_000_000);
const TimeConstant = z.number().min(1).max(10_000_000);

/**
 * Per-device baselines (baseline.ts): each device's own statistics, learned from its own
 * samples as they arrive, so a feature says "unusual for this device" rather than "unusual for
 * the fleet". All durations are in samples (at 1 Hz, seconds); every rate is an exponentially
 * weighted average with that time constant, a running average while it warms up, and robust:
 * a deviation beyond `clip` standard deviations moves a baseline as if it were `clip`.
 */
export const BaselineSpecSchema = z.object({
  /** Samples before jump, noise and trend are computed (0 until then). */
  noiseWarmupSamples: SampleCount,
  /** Time constant of the device's typical sample-to-sample change and slope. */
  noiseTimeConstant: TimeConstant,
  /** Window means before the level and residual features are computed (0 until then). */
  warmupSamples: SampleCount,
  /** Time constants of level0, level1, level2 (one to three). */
  levelTimeConstants: z.array(TimeConstant).min(1).max(3),
  /**
   * Each metric's window mean predicted from the other metrics' (and, for `laggedMetrics`, from
   * their low-pass filtered means too: a temperature follows the load with a lag), by a linear
   * regression fitted per device over `timeConstant`. Absent: no regression (levels are of the
   * window means themselves, residual is 0).
   */
  regression: z
    .object({
      timeConstant: TimeConstant,
      /** Time constant of the low-pass filter of the lagged predictors. */
      lagTimeConstant: TimeConstant,
      laggedMetrics: z.array(z.string().regex(METRIC_NAME_PATTERN)).max(MAX_BASELINE_METRICS),
      /** Window means fitted before the regression predicts (levels start then). */
      fitAfterSamples: SampleCount,
    })
    .optional(),
  /** Robust updates: deviations beyond this many standard deviations count as this many. */
  clip: z.number().min(1).max(100),
  /** The same for the baselines' variances (smaller: a lasting fault inflates them slowly). */
  varianceClip: z.number().min(1).max(100),
  /** Variances learn this many times more slowly than the means they belong to. */
  varianceSlowdown: z.number().min(1).max(1000),
  /** A device with a level beyond this many standard deviations is anomalous: its regression then learns ... */
  freezeAbove: z.number().min(1).max(100),
  /** ... at this fraction of its rate, so a fault does not become the device's normal. */
  freezeRate: z.number().min(0).max(1),
});
export type BaselineSpec = z.infer<typeof BaselineSpecSchema>;

/**
 * How a device's telemetry becomes one model input row. Per device, the agent keeps the last
 * `windowSize` samples of every metric in `metrics`; every `hopSize` new samples it computes,
 * for each metric in order and each feature in order, the feature value, then normalises it:
 * `(value - center[i]) / scale[i]`. The row length is `metrics.length * features.length`.
 * A telemetry message without one of `metrics` does not advance the window.
 */
export const FeatureSpecSchema = z
  .object({
    metrics: z.array(z.string().regex(METRIC_NAME_PATTERN)).min(1).max(64),
    features: z.array(WindowFeatureSchema).min(1),
    windowSize: z.number().int().min(1).max(4096),
    hopSize: z.number().int().min(1).max(4096),
    normalisation: z.object({
      center: z.array(z.number().finite()),
      scale: z.array(z.number().finite().positive()),
    }),
    /** Per-device baselines; required by the features in BASELINE_FEATURES, absent for a spec without them. */
    baseline: BaselineSpecSchema.optional(),
  })
  .superRefine((spec, ctx) => {
    const length = spec.metrics.length * spec.features.length;
    for (const key of ['center', 'scale'] as const) {
      if (spec.normalisation[key].length !== length) {
        ctx.addIssue({ code: 'custom', path: ['normalisation', key], message: `must hold ${length} values (metrics x features)` });
      }
    }
    const needsBaseline = spec.features.filter((f) => BASELINE_FEATURES.includes(f));
    if (spec.baseline === undefined) {
      if (needsBaseline.length > 0) ctx.addIssue({ code: 'custom', path: ['baseline'], message: `required by the features ${needsBaseline.join(', ')}` });
      return;
    }
    if (spec.metrics.length > MAX_BASELINE_METRICS) {
      ctx.addIssue({ code: 'custom', path: ['metrics'], message: `at most ${MAX_BASELINE_METRICS} metrics with a baseline` });
    }
    const levels = spec.baseline.levelTimeConstants.length;
    spec.features.forEach((f, i) => {
      const index = f === 'level0' ? 0 : f === 'level1' ? 1 : f === 'level2' ? 2 : -1;
      if (index >= levels) ctx.addIssue({ code: 'custom', path: ['features', i], message: `${f} needs ${index + 1} baseline.levelTimeConstants, there are ${levels}` });
    });
    spec.baseline.regression?.laggedMetrics.forEach((m, i) => {
      if (!spec.metrics.includes(m)) ctx.addIssue({ code: 'custom', path: ['baseline', 'regression', 'laggedMetrics', i], message: `${m} is not one of metrics` });
    });
  });
export type FeatureSpec = z.infer<typeof FeatureSpecSchema>;

/** Length of one model input row for a feature spec. */
export function featureLength(spec: Pick<FeatureSpec, 'metrics' | 'features'>): number {
  return spec.metrics.length * spec.features.length;
}

/** A tensor of the model's graph: float32, first dimension the batch (-1 = dynamic). */
export const TensorContractSchema = z.object({
  name: z.string().min(1).max(128),
  dims: z.array(z.number().int().min(-1)).min(1).max(4),
});
export type TensorContract = z.infer<typeof TensorContractSchema>;

/**
 * Name of an optional second output of a model's graph: [batch, row length], the evidence of each
 * feature of the row (feature j is metric `metrics[floor(j / features.length)]` and detector
 * `features[j % features.length]`), the score being the strongest. The manifest's contract names
 * the score only; an agent that finds this output in the graph reports which metrics made a
 * window anomalous.
 */
export const EVIDENCE_OUTPUT_NAME = 'evidence';

/** One self-test case: a normalised input row and the score the model must produce for it. */
export const TestVectorSchema = z.object({
  input: z.array(z.number().finite()).min(1),
  expectedScore: z.number().finite(),
});
export type TestVector = z.infer<typeof TestVectorSchema>;

const Sha256HexSchema = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits (sha256)');
const IsoTimeSchema = z.iso.datetime({ offset: true });

/** What is signed: everything about a model except the signature. */
export const ModelManifestSchema = z
  .object({
    name: ModelRefSchema.shape.name.max(64).regex(/^[A-Za-z0-9_.-]+$/, 'model name must match ^[A-Za-z0-9_.-]+$'),
    version: ModelRefSchema.shape.version.max(64).regex(/^[A-Za-z0-9_.+-]+$/, 'model version must match ^[A-Za-z0-9_.+-]+$'),
    description: z.string().max(1000).optional(),
    createdAt: IsoTimeSchema,
    /** After this time the agent refuses to load the model. */
    expiresAt: IsoTimeSchema,
    artifact: z.object({
      sha256: Sha256HexSchema,
      sizeBytes: z.number().int().positive(),
    }),
    /** ONNX opset the graph was built for. */
    opset: z.number().int().min(1),
    input: TensorContractSchema,
    /** One anomaly score per input row. */
    output: TensorContractSchema,
    featureSpec: FeatureSpecSchema,
    /** A score above this is an anomaly. */
    threshold: z.number().finite(),
    /**
     * How `threshold` was chosen, when it was: the lowest threshold whose alarm events (runs of
     * consecutive flagged windows of a device) that touch no labelled fault stay at or under
     * `targetFalseAlarmsPerDeviceDay` on held-out traffic of devices seen neither in training nor
     * in evaluation. Informational; agents do not read it.
     */
    thresholdCalibration: z
      .object({
        targetFalseAlarmsPerDeviceDay: z.number().nonnegative().finite(),
        falseAlarmsPerDeviceDay: z.number().nonnegative().finite(),
        heldOutDeviceDays: z.number().positive().finite(),
        heldOutDevices: z.number().int().positive(),
      })
      .optional(),
    testVectors: z.array(TestVectorSchema).min(1).max(256),
    /** Largest allowed |score - expectedScore| in the self-test. */
    testTolerance: z.number().finite().positive().max(1),
  })
  .superRefine((m, ctx) => {
    const length = featureLength(m.featureSpec);
    m.testVectors.forEach((v, i) => {
      if (v.input.length !== length) ctx.addIssue({ code: 'custom', path: ['testVectors', i, 'input'], message: `must hold ${length} values` });
    });
    // The contract the agent feeds: [batch, row length] in, one score per row out. A manifest
    // whose declared shapes contradict its own feature spec is refused here, not at the first batch.
    const [batch, rowLength, ...extraInput] = m.input.dims;
    if (batch === 0 || rowLength !== length || extraInput.length > 0) {
      ctx.addIssue({ code: 'custom', path: ['input', 'dims'], message: `must be [batch, ${length}] (batch -1 for dynamic; ${length} = metrics x features)` });
    }
    const [outputBatch, ...extraOutput] = m.output.dims;
    if (outputBatch === 0 || (batch !== undefined && batch !== -1 && outputBatch !== -1 && outputBatch !== batch) || extraOutput.some((d) => d !== 1)) {
      ctx.addIssue({ code: 'custom', path: ['output', 'dims'], message: 'must be [batch] (one score per input row; trailing dimensions of 1 allowed)' });
    }
    if (Date.parse(m.expiresAt) <= Date.parse(m.createdAt)) ctx.addIssue({ code: 'custom', path: ['expiresAt'], message: 'must be after createdAt' });
  });
export type ModelManifest = z.infer<typeof ModelManifestSchema>;

/** One problem of a manifest: where (`featureSpec.normalisation.scale`) and what is wrong. */
export interface ManifestIssue {
  path: string;
  message: string;
}

/** zod issues as `{ path: 'a.b.0', message }`, the root as `(root)`. */
function toManifestIssues(error: z.ZodError): ManifestIssue[] {
  return error.issues.map((issue) => ({ path: issue.path.map(String).join('.') || '(root)', message: issue.message }));
}

/**
 * MODEL_INVALID for a manifest zod refused: the message is `invalid <what>:` then every
 * problem as `path.to.field: message`, one per line; `details.issues` holds them as ManifestIssue.
 */
export function invalidManifestError(what: string, error: z.ZodError): OutpostError {
  const issues = toManifestIssues(error);
  return new OutpostError(ErrorCode.MODEL_INVALID, `invalid ${what}:\n${issues.map((i) => `${i.path}: ${i.message}`).join('\n')}`, { details: { issues } });
}

/**
 * Validates a manifest (ModelManifestSchema) from a file, a build or a caller; MODEL_INVALID
 * listing every problem (invalidManifestError) otherwise.
 */
export function parseModelManifest(value: unknown, what = 'model manifest'): ModelManifest {
  const parsed = ModelManifestSchema.safeParse(value);
  if (!parsed.success) throw invalidManifestError(what, parsed.error);
  return parsed.data;
}

/** An ed25519 signature over the canonical encoding of a manifest. */
export const ManifestSignatureSchema = z.object({
  algorithm: z.literal('ed25519'),
  /** Names the public key in the verifier's trust list. */
  keyId: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/),
  /** base64 of the 64-byte signature. */
  value: z.string().regex(/^[A-Za-z0-9+/]{86}==$/, 'must be a base64 ed25519 signature (64 bytes)'),
});
export type ManifestSignature = z.infer<typeof ManifestSignatureSchema>;

/** The `<model>.manifest.json` file next to a `<model>.onnx`. */
export const SignedManifestSchema = z.object({
  manifest: ModelManifestSchema,
  signature: ManifestSignatureSchema,
});
export type SignedManifest = z.infer<typeof SignedManifestSchema>;

/** A public key the agent trusts for model manifests (config: `inference.trustedKeys`). */
export const TrustedKeySchema = z.object({
  keyId: ManifestSignatureSchema.shape.keyId,
  /** The ed25519 public key, PEM (SPKI) or base64 of the 32 raw bytes. */
  publicKey: z.string().min(40).max(1000),
});
export type TrustedKey = z.infer<typeof TrustedKeySchema>;
