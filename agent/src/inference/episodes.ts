// Anomaly episodes (DESIGN section 2): consecutive flagged windows of a device are one episode,
// reported upstream when it opens and when it closes, so a fault lasting a minute is one alarm
// and not fifteen. Pure: results in, events out; the result sink does the I/O.
import {
  EPISODE_CLOSE_AFTER_CLEAN_WINDOWS,
  EpisodeCloseReason,
  MAX_EPISODE_CONTRIBUTORS,
  type EpisodeClosed,
  type EpisodeContributor,
  type EpisodeOpened,
  type FeatureSpec,
  type ModelRef,
} from '@outpost/shared';

/** One metric's strongest evidence in one window: which detector, how strong. */
export interface MetricEvidence {
  metric: string;
  detector: string;
  evidence: number;
}

/**
 * Per metric, the detector with the strongest evidence in one row of the model's `evidence`
 * output (feature j is metric `spec.metrics[floor(j / F)]`, detector `spec.features[j % F]`,
 * F = `spec.features.length`). Non-finite evidence is skipped; a metric with none is left out.
 */
export function metricEvidence(evidence: ArrayLike<number>, spec: Pick<FeatureSpec, 'metrics' | 'features'>): MetricEvidence[] {
  const perMetric = spec.features.length;
  const out: MetricEvidence[] = [];
  spec.metrics.forEach((metric, m) => {
    let best: MetricEvidence | undefined;
    for (let f = 0; f < perMetric; f++) {
      const value = evidence[m * perMetric + f];
      if (value === undefined || !Number.isFinite(value)) continue;
      if (best === undefined || value > best.evidence) best = { metric, detector: spec.features[f]!, evidence: value };
    }
    if (best !== undefined) out.push(best);
  });
  return out;
}

/** One scored window of a device, as the tracker reads it. */
export interface ScoredWindow {
  /** Device time of the window's newest sample, epoch ms. */
  ts: number;
  score: number;
  /** Flagged: the score was above `threshold`. */
  anomaly: boolean;
  model: ModelRef;
  threshold: number;
  /** Per metric evidence of the window (metricEvidence); undefined when the model gives none. */
  evidence?: readonly MetricEvidence[] | undefined;
}

export type EpisodeEvent =
  | { type: 'opened'; deviceId: string; body: EpisodeOpened }
  | { type: 'closed'; deviceId: string; body: EpisodeClosed };

export interface EpisodeTrackerOptions {
  /** Clean windows in a row that close an episode; default EPISODE_CLOSE_AFTER_CLEAN_WINDOWS. */
  closeAfterCleanWindows?: number;
  /** An open episode of a device with no scored window for this long closes as `silent` (see `closeSilent`), ms. */
  silenceMs: number;
  /** A new episode id (unique per agent). */
  newId: () => string;
}

export interface EpisodeTracker {
  /** Takes a device's next scored window (in the order scored); returns what opened or closed. `nowMs`: a monotonic clock. */
  observe(deviceId: string, window: ScoredWindow, nowMs: number): EpisodeEvent[];
  /** Closes (`silent`) every open episode whose device had no scored window for `silenceMs` before `nowMs`. */
  closeSilent(nowMs: number): EpisodeEvent[];
  /** Closes every open episode with `reason` (at shutdown). */
  closeAll(reason: EpisodeCloseReason): EpisodeEvent[];
  /** Devices with an open episode. */
  readonly openCount: number;
}

interface OpenEpisode {
  id: string;
  model: ModelRef;
  threshold: number;
  startTs: number;
  lastSeenTs: number;
  peakScore: number;
  peakTs: number;
  windows: number;
  /** Clean windows since the last flagged one, and the time of the first of them. */
  clean: number;
  firstCleanTs: number;
  lastActivityMs: number;
  /** Per metric, its strongest evidence over the episode. */
  evidence: Map<string, MetricEvidence>;
}

/** Strongest first: the metrics whose evidence crossed the threshold, at least the strongest one. */
function contributorsOf(evidence: Iterable<MetricEvidence>, threshold: number): EpisodeContributor[] {
  const sorted = [...evidence].sort((a, b) => b.evidence - a.evidence);
  const above = sorted.filter((e) => e.evidence > threshold);
  return (above.length > 0 ? above : sorted.slice(0, 1)).slice(0, MAX_EPISODE_CONTRIBUTORS).map(({ metric, detector, evidence: value }) => ({ metric, detector, evidence: value }));
}

function mergeEvidence(into: Map<string, MetricEvidence>, window: readonly MetricEvidence[] | undefined): void {
  for (const e of window ?? []) {
    const known = into.get(e.metric);
    if (known === undefined || e.evidence > known.evidence) into.set(e.metric, e);
  }
}

const sameModel = (a: ModelRef, b: ModelRef): boolean => a.name === b.name && a.version === b.version;

/**
 * The episode state machine of every device. A device's first flagged window opens an episode;
 * its flagged windows extend it (last seen, peak, contributors); `closeAfterCleanWindows` clean
 * windows in a row close it (`recovered`, ended at the first of them), so a score flickering
 * around the threshold inside that gap stays one episode. A window of another model closes it
 * (`model-changed`) before the window counts for the new model. Memory: open episodes only.
 */
export function createEpisodeTracker(options: EpisodeTrackerOptions): EpisodeTracker {
  const closeAfter = options.closeAfterCleanWindows ?? EPISODE_CLOSE_AFTER_CLEAN_WINDOWS;
  if (!Number.isSafeInteger(closeAfter) || closeAfter < 1) throw new RangeError(`closeAfterCleanWindows must be a positive integer, got ${closeAfter}`);
  const open = new Map<string, OpenEpisode>();

  const close = (deviceId: string, ep: OpenEpisode, reason: EpisodeCloseReason): EpisodeEvent => {
    open.delete(deviceId);
    return {
      type: 'closed',
      deviceId,
      body: {
        episodeId: ep.id,
        model: ep.model,
        startTs: ep.startTs,
        threshold: ep.threshold,
        contributors: contributorsOf(ep.evidence.values(), ep.threshold),
        lastSeenTs: ep.lastSeenTs,
        endTs: reason === EpisodeCloseReason.recovered ? ep.firstCleanTs : ep.lastSeenTs,
        peakScore: ep.peakScore,
        peakTs: ep.peakTs,
        windows: ep.windows,
        reason,
      },
    };
  };

  return {
    observe(deviceId, window, nowMs) {
      const events: EpisodeEvent[] = [];
      let ep = open.get(deviceId);
      if (ep !== undefined && !sameModel(ep.model, window.model)) {
        events.push(close(deviceId, ep, EpisodeCloseReason.modelChanged));
        ep = undefined;
      }
      if (window.anomaly) {
        if (ep === undefined) {
          ep = {
            id: options.newId(),
            model: window.model,
            threshold: window.threshold,
            startTs: window.ts,
            lastSeenTs: window.ts,
            peakScore: window.score,
            peakTs: window.ts,
            windows: 1,
            clean: 0,
            firstCleanTs: window.ts,
            lastActivityMs: nowMs,
            evidence: new Map(),
          };
          mergeEvidence(ep.evidence, window.evidence);
          open.set(deviceId, ep);
          const { id, model, startTs, threshold } = ep;
          events.push({ type: 'opened', deviceId, body: { episodeId: id, model, startTs, threshold, contributors: contributorsOf(ep.evidence.values(), threshold), score: window.score } });
          return events;
        }
        ep.windows++;
        ep.lastSeenTs = window.ts;
        ep.clean = 0;
        if (window.score > ep.peakScore) {
          ep.peakScore = window.score;
          ep.peakTs = window.ts;
        }
        mergeEvidence(ep.evidence, window.evidence);
        ep.lastActivityMs = nowMs;
        return events;
      }
      if (ep === undefined) return events;
      ep.clean++;
      if (ep.clean === 1) ep.firstCleanTs = window.ts;
      ep.lastActivityMs = nowMs;
      if (ep.clean >= closeAfter) events.push(close(deviceId, ep, EpisodeCloseReason.recovered));
      return events;
    },
    closeSilent(nowMs) {
      const events: EpisodeEvent[] = [];
      for (const [deviceId, ep] of open) {
        if (nowMs - ep.lastActivityMs >= options.silenceMs) events.push(close(deviceId, ep, EpisodeCloseReason.silent));
      }
      return events;
    },
    closeAll(reason) {
      return [...open].map(([deviceId, ep]) => close(deviceId, ep, reason));
    },
    get openCount() {
      return open.size;
    },
  };
}
