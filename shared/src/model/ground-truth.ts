import { z } from 'zod';
import { DeviceIdSchema } from '../schemas/device.js';

/**
 * One line of the simulator's ground-truth JSONL (`outpost-sim devices --record FILE --truth
 * FILE`): an anomaly episode of one device, as its payload ts and seq. Written by
 * simulators/src/anomalies (formatTruthLine), read by models' evaluation.
 */
export const GroundTruthEpisodeSchema = z.object({
  deviceId: DeviceIdSchema,
  /** spike, drift, stuck, noise-burst, vibration-rise (the simulator's AnomalyType). */
  type: z.string().min(1),
  metric: z.string().min(1),
  /** Payload ts (epoch ms) of the first and last affected sample. */
  startTs: z.number().int().nonnegative(),
  endTs: z.number().int().nonnegative(),
  /** Device seq of the first and last affected sample. */
  startSeq: z.number().int().nonnegative(),
  endSeq: z.number().int().nonnegative(),
});
export type GroundTruthEpisode = z.infer<typeof GroundTruthEpisodeSchema>;
