import type { MetricSpec, Profile } from '../profiles/index.js';
import { clamp } from '../profiles/profile.js';
import type { Rng } from '../random/prng.js';
import { AnomalyType } from './anomaly-types.js';

/** One anomaly type as a resolved scenario has it. */
export interface ResolvedAnomalyType {
  type: AnomalyType;
  weight: number;
  durationS: readonly [number, number];
  magnitude: readonly [number, number];
  metrics: readonly string[] | undefined;
}

export interface ResolvedAnomalies {
  /** Mean episodes per device-hour of simulated time; exclusive with probabilityPerSample. */
  ratePerDeviceHour: number | undefined;
  /** Chance that an episode starts at a sample (when the device is free). */
  probabilityPerSample: number | undefined;
  minGapS: number;
  types: readonly ResolvedAnomalyType[];
}

/** One planned anomaly of one device. */
export interface Episode {
  type: AnomalyType;
  metric: string;
  startSeq: number;
  endSeq: number;
  /** In multiples of the metric's spread. */
  magnitude: number;
  sign: 1 | -1;
}

export interface AnomalySchedule {
  /** The episode covering sample `seq`, if any; call with seq 0, 1, 2... in order. */
  at(seq: number): Episode | undefined;
}

interface Candidate {
  config: ResolvedAnomalyType;
  metrics: readonly MetricSpec[];
}

/**
 * Plans one device's anomalies lazily, sample by sample, from its own random stream: an
 * unbounded live run and a recorded hour get the same episodes. Episodes never overlap and
 * keep `minGapS` of normal samples between them; start times are random (exponential gaps)
 * with the mean chosen so the start-to-start rate matches `ratePerDeviceHour` on average.
 */
export function createAnomalySchedule(anomalies: ResolvedAnomalies, profile: Profile, ratePerS: number, rng: Rng): AnomalySchedule {
  const byName = new Map(profile.metrics.map((m) => [m.name, m]));
  const candidates: Candidate[] = [];
  for (const config of anomalies.types) {
    if (config.weight <= 0) continue;
    const names = config.metrics ?? (config.type === AnomalyType.vibrationRise ? ['vibration'] : profile.anomalyMetrics);
    const metrics = names.map((n) => byName.get(n)).filter((m): m is MetricSpec => m !== undefined);
    if (metrics.length > 0) candidates.push({ config, metrics });
  }
  const totalWeight = candidates.reduce((sum, c) => sum + c.config.weight, 0);
  const meanDurationSamples =
    candidates.reduce((sum, c) => sum + c.config.weight * ((c.config.durationS[0] + c.config.durationS[1]) / 2), 0) / Math.max(totalWeight, 1e-9) * ratePerS;
  const minGapSamples = Math.max(1, Math.ceil(anomalies.minGapS * ratePerS));
  const meanIntervalSamples =
    anomalies.ratePerDeviceHour !== undefined
      ? anomalies.ratePerDeviceHour > 0
        ? (3_600 * ratePerS) / anomalies.ratePerDeviceHour
        : Infinity
      : (anomalies.probabilityPerSample ?? 0) > 0
        ? 1 / (anomalies.probabilityPerSample as number)
        : Infinity;
  // The free time between episodes, so that gap + episode averages the requested interval.
  const meanFreeSamples = Math.max(0.1 * meanIntervalSamples, meanIntervalSamples - minGapSamples - meanDurationSamples);
  const enabled = candidates.length > 0 && Number.isFinite(meanIntervalSamples);

  const nextGap = (): number => minGapSamples + Math.floor(rng.exponential(meanFreeSamples));
  let nextStart = enabled ? nextGap() : Infinity;
  let current: Episode | undefined;

  // Smooth weighted round-robin from a random starting point: the mix follows the weights
  // closely even over the few episodes one device has, yet differs from device to device.
  const credit = candidates.map(() => rng.uniform(0, totalWeight));
  const pickCandidate = (): Candidate => {
    let best = 0;
    candidates.forEach((c, i) => {
      credit[i] = (credit[i] as number) + c.config.weight;
      if ((credit[i] as number) > (credit[best] as number)) best = i;
    });
    credit[best] = (credit[best] as number) - totalWeight;
    return candidates[best] as Candidate;
  };

  return {
    at(seq) {
      if (current !== undefined && seq > current.endSeq) current = undefined;
      if (current === undefined && seq >= nextStart) {
        const { config, metrics } = pickCandidate();
        const metric = rng.pick(metrics);
        const durationSamples = Math.max(1, Math.round(rng.uniform(config.durationS[0], config.durationS[1]) * ratePerS));
        const magnitude = rng.uniform(config.magnitude[0], config.magnitude[1]);
        // Metrics bounded below by 0 (vibration, current) deviate upwards, where there is room.
        const sign: 1 | -1 = metric.min === 0 || config.type === AnomalyType.vibrationRise ? 1 : rng.next() < 0.5 ? 1 : -1;
        current = { type: config.type, metric: metric.name, startSeq: seq, endSeq: seq + durationSamples - 1, magnitude, sign };
        nextStart = current.endSeq + 1 + nextGap();
      }
      return current;
    },
  };
}

/**
 * The value of `episode.metric` at sample `seq` inside the episode: `normal` is the value the
 * sensor would have read, `stuckAt` the last value it sent before the episode.
 */
export function applyEpisode(episode: Episode, seq: number, normal: number, spec: MetricSpec, stuckAt: number, rng: Rng): number {
  const size = episode.magnitude * spec.spread;
  const progress = (seq - episode.startSeq + 1) / (episode.endSeq - episode.startSeq + 1);
  let value: number;
  switch (episode.type) {
    case AnomalyType.spike:
      value = normal + episode.sign * size;
      break;
    case AnomalyType.drift:
      value = normal + episode.sign * size * progress;
      break;
    case AnomalyType.stuck:
      value = stuckAt;
      break;
    case AnomalyType.noiseBurst:
      value = normal + size * rng.normal();
      break;
    case AnomalyType.vibrationRise:
      value = normal + size * Math.min(1, progress / 0.3);
      break;
  }
  return clamp(value, spec.min, spec.max);
}
