import { z } from 'zod';
import { METRIC_NAME_PATTERN } from '@outpost/shared';
import {
  ANOMALY_TYPES,
  DEFAULT_ANOMALY_MIN_GAP_S,
  DEFAULT_ANOMALY_TYPES,
  DEFAULT_DRIFT_RAMP_FRACTION,
  DEFAULT_DROPOUT_BURST_S,
  DEFAULT_DROPOUT_GAP_S,
  type AnomalyType,
} from '../anomalies/anomaly-types.js';
import { DEFAULT_OVERSIZE_BYTES, MALFORMED_KINDS } from '../faults/message-faults.js';
import { DEFAULT_PROFILE, PROFILE_NAMES } from '../profiles/index.js';

/** Simulated time of sample 0 in record mode when a scenario does not set `startTs`. */
export const DEFAULT_START_TS = '2026-01-01T00:00:00Z';
export const DEFAULT_SEED = 1;
export const DEFAULT_RATE_PER_S = 1;
export const DEFAULT_DEVICE_COUNT = 10;
export const DEFAULT_DEVICE_PREFIX = 'dev-';
/** A link that drops stays down this long before the device reconnects. */
export const DEFAULT_FLAKY_DOWN_S = 1;

const PositiveSeconds = z.number().positive();
const Ratio = z.number().min(0).max(1);
const Probability = z.number().min(0).max(1);

const Range = z
  .tuple([z.number().nonnegative(), z.number().nonnegative()])
  .refine(([min, max]) => min <= max, 'must be [min, max] with min <= max');

/** What a type's shape takes beyond weight, duration, magnitude and metrics (all optional, all with defaults). */
const TypeOptions = z.strictObject({
  /** drift: share of the episode the ramp takes; the offset then holds until the episode ends. */
  rampFraction: z.number().gt(0).max(1).default(DEFAULT_DRIFT_RAMP_FRACTION),
  /**
   * drift, slow-drift: share of the episodes whose offset never goes back (0..1); such an
   * episode lasts until the device stops sending, and no other episode follows it.
   */
  persist: Ratio.default(0),
  /** dropout: seconds one burst of zero readings lasts, and seconds of normal readings between two. */
  burstS: Range.default([...DEFAULT_DROPOUT_BURST_S]),
  gapS: Range.default([...DEFAULT_DROPOUT_GAP_S]),
});
/** Which of TypeOptions' keys each type accepts (a key another type owns is refused as unknown). */
const TYPE_OPTION_KEYS: Readonly<Record<AnomalyType, readonly (keyof typeof TypeOptions.shape)[]>> = {
  spike: [],
  drift: ['rampFraction', 'persist'],
  'slow-drift': ['persist'],
  stuck: [],
  'noise-burst': [],
  'vibration-rise': [],
  dropout: ['burstS', 'gapS'],
};

function anomalyTypeSchema(type: AnomalyType) {
  const defaults = DEFAULT_ANOMALY_TYPES[type];
  const options = Object.fromEntries(TYPE_OPTION_KEYS[type].map((key) => [key, TypeOptions.shape[key]])) as Partial<typeof TypeOptions.shape>;
  return z.strictObject({
    /** Relative share of this type among the episodes. */
    weight: z.number().nonnegative().default(1),
    durationS: Range.default([...defaults.durationS]),
    /** In multiples of the metric's typical spread (the profile names it per metric); slow-drift: per minute. */
    magnitude: Range.default([...defaults.magnitude]),
    /** Only these metrics; default: the profile's anomaly metrics (vibration for vibration-rise). */
    metrics: z.array(z.string().regex(METRIC_NAME_PATTERN, 'must be a metric name')).min(1).optional(),
    ...options,
  });
}

const AnomalyTypesSchema = z.strictObject(
  Object.fromEntries(ANOMALY_TYPES.map((t) => [t, anomalyTypeSchema(t).optional()])) as {
    [K in AnomalyType]: z.ZodOptional<ReturnType<typeof anomalyTypeSchema>>;
  },
);

const AnomaliesSchema = z
  .strictObject({
    /** Mean episodes per device and hour of simulated time. */
    ratePerDeviceHour: z.number().nonnegative().optional(),
    /** Or: the chance that an episode starts at a given sample while the device is free. */
    probabilityPerSample: Probability.optional(),
    /** Normal time kept between two episodes of one device. */
    minGapS: z.number().nonnegative().default(DEFAULT_ANOMALY_MIN_GAP_S),
    /** No episode starts in a device's first this many seconds (e.g. while a model's per-device baseline settles). */
    startAfterS: z.number().nonnegative().default(0),
    /** Which types, with their settings; omitted: all of them with their defaults. */
    types: AnomalyTypesSchema.optional(),
  })
  .superRefine((a, ctx) => {
    if (a.ratePerDeviceHour === undefined && a.probabilityPerSample === undefined) {
      ctx.addIssue({ code: 'custom', path: ['ratePerDeviceHour'], message: 'set ratePerDeviceHour or probabilityPerSample' });
    }
    if (a.ratePerDeviceHour !== undefined && a.probabilityPerSample !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['probabilityPerSample'], message: 'use either ratePerDeviceHour or probabilityPerSample, not both' });
    }
  });

const FaultsSchema = z.strictObject({
  /** Payloads the agent must dead-letter, replacing the sample they stand for. */
  malformed: z
    .strictObject({
      probability: Probability,
      kinds: z.array(z.enum(MALFORMED_KINDS)).min(1).default([...MALFORMED_KINDS]),
    })
    .optional(),
  /** Publishes bigger than the agent's maxPacketBytes; always QoS 0, so no device resends one forever. */
  oversize: z
    .strictObject({
      probability: Probability,
      bytes: z
        .number()
        .int()
        .min(1024)
        .max(64 * 1024 * 1024)
        .default(DEFAULT_OVERSIZE_BYTES),
    })
    .optional(),
  /** This share of the devices connects with a wrong password (they are refused and send nothing). */
  badCredentials: z.strictObject({ ratio: Ratio }).optional(),
  /** This share of the devices loses its link every intervalS, right after a publish left, and reconnects after downS. */
  flakyLink: z
    .strictObject({ ratio: Ratio.default(1), intervalS: PositiveSeconds, downS: PositiveSeconds.default(DEFAULT_FLAKY_DOWN_S) })
    .optional(),
  /** This share of the devices has its clock off by offsetS (sign chosen per device). */
  clockSkew: z.strictObject({ ratio: Ratio.default(1), offsetS: PositiveSeconds }).optional(),
});

const DeviceGroupSchema = z.strictObject({
  count: z.number().int().min(1).max(100_000),
  /** Device ids are prefix + zero-padded index (4 digits at least): dev-0001. */
  prefix: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{0,56}$/, 'must be at most 56 characters of [A-Za-z0-9_.-]')
    .default(DEFAULT_DEVICE_PREFIX),
  startIndex: z.number().int().min(0).default(1),
  profile: z.enum(PROFILE_NAMES).default(DEFAULT_PROFILE),
  /** Messages per second of each device of this group; default the scenario's ratePerS. */
  ratePerS: z.number().positive().max(10_000).optional(),
});

const EpochMsOrIso = z.union([
  z.number().int().nonnegative(),
  z.iso.datetime({ offset: true, message: 'must be epoch milliseconds or an ISO 8601 date-time such as 2026-01-01T00:00:00Z' }),
]);

/** A scenario file (YAML or JSON): who sends what, how fast, for how long, with which anomalies and faults. */
export const ScenarioSchema = z
  .strictObject({
    name: z.string().min(1).max(128).optional(),
    description: z.string().optional(),
    /** Everything random follows from it. */
    seed: z.union([z.number().int(), z.string().min(1).max(256)]).default(DEFAULT_SEED),
    /** Simulated time of the first sample in record mode. Live runs use the wall clock. */
    startTs: EpochMsOrIso.default(DEFAULT_START_TS),
    /** Run length; per device it is durationS x rate samples. */
    durationS: PositiveSeconds.optional(),
    /** Or: messages per device (the smaller bound wins when both are set). */
    count: z.number().int().positive().optional(),
    qos: z.union([z.literal(0), z.literal(1)]).default(1),
    /** Default rate of every device, messages per second. */
    ratePerS: z.number().positive().max(10_000).default(DEFAULT_RATE_PER_S),
    /** Or: messages per second over all devices, split evenly. */
    totalRatePerS: z.number().positive().max(1_000_000).optional(),
    devices: z.array(DeviceGroupSchema).min(1).default([{ count: DEFAULT_DEVICE_COUNT, prefix: DEFAULT_DEVICE_PREFIX, startIndex: 1, profile: DEFAULT_PROFILE }]),
    anomalies: AnomaliesSchema.optional(),
    faults: FaultsSchema.prefault({}),
  })
  .superRefine((s, ctx) => {
    if (s.totalRatePerS !== undefined) {
      s.devices.forEach((group, index) => {
        if (group.ratePerS !== undefined) {
          ctx.addIssue({ code: 'custom', path: ['devices', index, 'ratePerS'], message: 'use either totalRatePerS or per-group ratePerS, not both' });
        }
      });
    }
  });

/** What a user writes in a scenario file. */
export type ScenarioInput = z.input<typeof ScenarioSchema>;
/** A validated scenario with defaults filled in (still in the user's units). */
export type Scenario = z.output<typeof ScenarioSchema>;
