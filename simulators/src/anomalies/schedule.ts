import type { MetricSpec, Profile } from '../profiles/index.js';
import { clamp } from '../profiles/profile.js';
import type { Rng } from '../random/prng.js';
import { AnomalyType, DEFAULT_DRIFT_RAMP_FRACTION, DEFAULT_DROPOUT_BURST_S, DEFAULT_DROPOUT_GAP_S } from './anomaly-types.js';

/** One anomaly type as a resolved scenario has it. */
export interface ResolvedAnomalyType {
  type: AnomalyType;
  weight: number;
  durationS: readonly [number, number];
  magnitude: readonly [number, number];
  metrics: readonly string[] | undefined;
  /** drift: share of the episode the ramp takes (default DEFAULT_DRIFT_RAMP_FRACTION). */
  rampFraction?: number;
  /** drift, slow-drift: share of the episodes whose offset never goes back (they last until the device stops). */
  persist?: number;
  /** dropout: length of one burst and of the normal readings between two, seconds. */
  burstS?: readonly [number, number];
  gapS?: readonly [number, number];
}

export interface ResolvedAnomalies {
  /** Mean episodes per device-hour of simulated time; exclusive with probabilityPerSample. */
  ratePerDeviceHour: number | undefined;
  /** Chance that an episode starts at a sample (when the device is free). */
  probabilityPerSample: number | undefined;
  minGapS: number;
  /** No episode starts in the first this many seconds of a device's run (default 0). */
  startAfterS?: number;
  types: readonly ResolvedAnomalyType[];
}

/** One planned anomaly of one device. */
export interface Episode {
  type: AnomalyType;
  metric: string;
  startSeq: number;
  /** Last affected sample; Infinity for a persistent drift (it lasts as long as the device runs). */
  endSeq: number;
  /** In multiples of the metric's spread (slow-drift: of the spread per minute). */
  magnitude: number;
  sign: 1 | -1;
  /** drift: samples the ramp takes (then the offset holds). */
  rampSamples: number;
  /** slow-drift: offset added per sample, in multiples of the spread. */
  slopePerSample: number;
  /** dropout: the bursts as [first, last] seq, in order. */
  bursts: readonly (readonly [number, number])[];
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
  const startAfterSamples = Math.ceil((anomalies.startAfterS ?? 0) * ratePerS);
  let nextStart = enabled ? startAfterSamples + nextGap() : Infinity;
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
        const bursts = config.type === AnomalyType.dropout ? planBursts(seq, durationSamples, config, ratePerS, rng) : [];
        const plannedEnd = bursts.length > 0 ? bursts[bursts.length - 1]![1] : seq + durationSamples - 1;
        // Drawn only for types that can persist, so the other types' random streams are unchanged.
        const persistent = (config.type === AnomalyType.drift || config.type === AnomalyType.slowDrift) && (config.persist ?? 0) > 0 && rng.next() < (config.persist ?? 0);
        current = {
          type: config.type,
          metric: metric.name,
          startSeq: seq,
          endSeq: persistent ? Infinity : plannedEnd,
          magnitude,
          sign,
          rampSamples: Math.max(1, Math.round(durationSamples * (config.rampFraction ?? DEFAULT_DRIFT_RAMP_FRACTION))),
          slopePerSample: magnitude / (60 * ratePerS),
          bursts,
        };
        nextStart = current.endSeq + 1 + nextGap();
      }
      return current;
    },
  };
}

/**
 * A dropout's bursts: the first starts at `startSeq`, then normal gaps and bursts alternate
 * (lengths drawn from `gapS` and `burstS`) while the next burst still starts within
 * `durationSamples`; the last burst ends the episode.
 */
function planBursts(startSeq: number, durationSamples: number, config: ResolvedAnomalyType, ratePerS: number, rng: Rng): [number, number][] {
  const burstS = config.burstS ?? DEFAULT_DROPOUT_BURST_S;
  const gapS = config.gapS ?? DEFAULT_DROPOUT_GAP_S;
  const draw = (range: readonly [number, number]): number => Math.max(1, Math.round(rng.uniform(range[0], range[1]) * ratePerS));
  const bursts: [number, number][] = [];
  let from = startSeq;
  while (from < startSeq + durationSamples) {
    const to = from + draw(burstS) - 1;
    bursts.push([from, to]);
    from = to + 1 + draw(gapS);
  }
  return bursts;
}

/**
 * The value of `episode.metric` at sample `seq` inside the episode: `normal` is the value the
 * sensor would have read, `stuckAt` the last value it sent before the episode.
 */
export function applyEpisode(episode: Episode, seq: number, normal: number, spec: MetricSpec, stuckAt: number, rng: Rng): number {
  const size = episode.magnitude * spec.spread;
  const elapsed = seq - episode.startSeq + 1;
  const progress = elapsed / (episode.endSeq - episode.startSeq + 1);
  let value: number;
  switch (episode.type) {
    case AnomalyType.spike:
      value = normal + episode.sign * size;
      break;
    case AnomalyType.drift:
      value = normal + episode.sign * size * Math.min(1, elapsed / episode.rampSamples);
      break;
    case AnomalyType.slowDrift:
      value = normal + episode.sign * episode.slopePerSample * elapsed * spec.spread;
      break;
    case AnomalyType.dropout:
      value = episode.bursts.some(([from, to]) => seq >= from && seq <= to) ? 0 : normal;
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
