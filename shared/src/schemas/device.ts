import { z } from 'zod';
import { DEVICE_ID_PATTERN } from '../topics.js';

/**
 * Metric names a device may use: short, printable, no spaces, starting with a letter (which
 * also keeps out `__proto__`, a key JavaScript objects would silently swallow).
 */
export const METRIC_NAME_PATTERN = /^[A-Za-z][A-Za-z0-9_.:-]{0,63}$/;
/** At most this many metrics in one telemetry message. */
export const MAX_METRICS_PER_MESSAGE = 256;

export const DeviceIdSchema = z.string().regex(DEVICE_ID_PATTERN, 'device id must match ^[A-Za-z0-9_.-]{1,64}$');

const EpochMsSchema = z
  .number()
  .int('must be an integer (epoch milliseconds)')
  .nonnegative()
  .max(8.64e15, 'is not a valid time');

const METRIC_NAME_MESSAGE = 'metric name must match ^[A-Za-z][A-Za-z0-9_.:-]{0,63}$';

/** The `metrics` object of a telemetry message: 1 to 256 finite numbers by metric name. */
const MetricsSchema = z
  .unknown()
  // zod's record skips an own `__proto__` key (its guard against prototype pollution), which
  // would drop such a metric silently instead of refusing the payload.
  .superRefine((value, ctx) => {
    if (typeof value === 'object' && value !== null && Object.hasOwn(value, '__proto__')) {
      ctx.addIssue({ code: 'custom', path: ['__proto__'], message: METRIC_NAME_MESSAGE });
    }
  })
  .pipe(
    z
      .record(z.string().regex(METRIC_NAME_PATTERN, METRIC_NAME_MESSAGE), z.number().finite())
      .refine((m) => Object.keys(m).length > 0, 'must hold at least one metric')
      .refine((m) => Object.keys(m).length <= MAX_METRICS_PER_MESSAGE, `must hold at most ${MAX_METRICS_PER_MESSAGE} metrics`),
  );

/** `devices/{deviceId}/telemetry` payload (DESIGN section 6). */
export const TelemetrySchema = z.object({
  ts: EpochMsSchema,
  seq: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional(),
  metrics: MetricsSchema,
});
export type Telemetry = z.infer<typeof TelemetrySchema>;

export const ModelRefSchema = z.object({ name: z.string().min(1), version: z.string().min(1) });
export type ModelRef = z.infer<typeof ModelRefSchema>;

/** `devices/{deviceId}/inference` payload, agent -> local subscribers. */
export const InferenceResultSchema = z.object({
  ts: EpochMsSchema,
  model: ModelRefSchema,
  score: z.number().finite(),
  anomaly: z.boolean(),
});
export type InferenceResult = z.infer<typeof InferenceResultSchema>;

/** Why the agent refused or set aside a device publish. */
export const RejectReason = {
  invalidJson: 'invalid-json',
  invalidPayload: 'invalid-payload',
  notUtf8: 'not-utf8',
  unknownTopic: 'unknown-topic',
  rateLimited: 'rate-limited',
} as const;
export type RejectReason = (typeof RejectReason)[keyof typeof RejectReason];

/** `devices/{deviceId}/errors` payload, agent -> device, one per rejected publish. */
export const DeviceErrorSchema = z.object({
  ts: EpochMsSchema,
  reason: z.string().min(1),
  topic: z.string(),
  /** Human-readable detail: which field was wrong and why. */
  detail: z.string().optional(),
  /** The device's own seq, when the payload carried one. */
  seq: z.number().int().optional(),
});
export type DeviceError = z.infer<typeof DeviceErrorSchema>;
