// Anomaly episodes of one device as the device page shows them: a band on every chart from the
// episode's start to its end (to the newest data while it is open), and a row in the list.
import type { Anomaly, EpisodeView, ModelRef } from './api-types.js';

export interface EpisodeRow {
  episodeId: string;
  startTs: number;
  /** Null while open. */
  endTs: number | null;
  state: EpisodeView['state'];
  reason: EpisodeView['reason'];
  peakScore: number;
  windows: number | null;
  model: ModelRef;
  /** `vibration (run)`, strongest first. */
  contributors: string[];
}

/** The device's episodes among `anomalies` (an /api/anomalies answer), newest first. */
export function deviceEpisodes(anomalies: readonly Anomaly[], agentId: string, deviceId: string): EpisodeRow[] {
  return anomalies
    .filter((a) => a.episode !== undefined && a.agentId === agentId && a.deviceId === deviceId)
    .map((a) => {
      const ep = a.episode!;
      return {
        episodeId: ep.episodeId,
        startTs: ep.startTs,
        endTs: ep.endTs,
        state: ep.state,
        reason: ep.reason,
        peakScore: a.score,
        windows: ep.windows,
        model: a.model,
        contributors: ep.contributors.map((c) => `${c.metric} (${c.detector})`),
      };
    })
    .sort((x, y) => y.startTs - x.startTs);
}

/** Chart bands `[fromMs, toMs]`: an open episode reaches `latestMs` (the newest data shown), or its start without data. */
export function episodeSpans(rows: readonly EpisodeRow[], latestMs: number | undefined): [number, number][] {
  return rows.map((r) => [r.startTs, r.endTs ?? Math.max(r.startTs, latestMs ?? r.startTs)]);
}
