// Anomalies kept longer than the recent window, bounded in age and count: anomaly episodes (kinds
// `anomaly-opened` and `anomaly-closed`: one entry per episode, however many windows it lasted)
// and single flagged windows of agents from before episodes (kind `anomaly`). Pure and in memory,
// rebuilt from the uplink stream at start like the recent window.
import { EpisodeCloseReason, EpisodeState, type Anomaly, type EpisodeClosed, type EpisodeOpened } from '@outpost/shared';

export interface AnomalyLogOptions {
  /** Anomalies last stored in the stream before `now - retentionMs` are dropped by `prune`. */
  retentionMs: number;
  /** Anomalies kept; the oldest arrivals go first. */
  maxAnomalies: number;
}

export interface AnomalyQuery {
  /**
   * Only anomalies active at or after `sinceMs` (device time): a window with `ts >= sinceMs`, an
   * episode still open or that ended at or after it.
   */
  sinceMs: number;
  agentId?: string | undefined;
  deviceId?: string | undefined;
  limit: number;
}

/** One record of an episode, as the live view read it. */
export type EpisodeRecord =
  | { type: 'opened'; agentId: string; deviceId: string; receivedAtMs: number; body: EpisodeOpened }
  | { type: 'closed'; agentId: string; deviceId: string; receivedAtMs: number; body: EpisodeClosed };

export interface AnomalyLog {
  /** Adds a single flagged window; false when the record (same `key`) is already there. */
  add(anomaly: Anomaly, key: string, storedAtMs: number): boolean;
  /**
   * Opens or closes an episode (either record may come first, or alone: an opened record evicted
   * on the agent, or older than the retention). Returns the episode as it now reads, or undefined
   * when the record changed nothing (sent again, or an opened record after the closed one).
   */
  addEpisode(record: EpisodeRecord, storedAtMs: number): Anomaly | undefined;
  /** Matching anomalies, newest (by `ts`, an episode's start) first, at most `limit`. */
  query(query: AnomalyQuery): Anomaly[];
  prune(nowMs: number): void;
  size(): number;
}

interface Stored {
  anomaly: Anomaly;
  key: string;
  storedAtMs: number;
}

function episodeAnomaly(record: EpisodeRecord): Anomaly {
  const { agentId, deviceId, receivedAtMs, body } = record;
  const base = { agentId, deviceId, ts: body.startTs, threshold: body.threshold, model: body.model, receivedAtMs };
  if (record.type === 'opened') {
    return {
      ...base,
      score: record.body.score,
      episode: { episodeId: body.episodeId, state: EpisodeState.open, startTs: body.startTs, lastSeenTs: body.startTs, endTs: null, windows: null, reason: null, contributors: body.contributors },
    };
  }
  const closed = record.body;
  return {
    ...base,
    score: closed.peakScore,
    episode: {
      episodeId: closed.episodeId,
      state: EpisodeState.closed,
      startTs: closed.startTs,
      lastSeenTs: closed.lastSeenTs,
      endTs: closed.endTs,
      windows: closed.windows,
      reason: closed.reason,
      contributors: closed.contributors,
    },
  };
}

/** The last device time an anomaly is known active at (an open episode: for ever, until closed). */
function activeUntil(a: Anomaly): number {
  if (a.episode === undefined) return a.ts;
  return a.episode.state === EpisodeState.open ? Number.POSITIVE_INFINITY : (a.episode.endTs ?? a.episode.lastSeenTs);
}

/** An empty log; anomalies come in with `add` and `addEpisode`, go with `prune` and the count bound. */
export function createAnomalyLog(options: AnomalyLogOptions): AnomalyLog {
  // Arrival (stream) order, so the count bound takes the oldest first.
  let entries: Stored[] = [];
  const byKey = new Map<string, Stored>();
  /** Open episodes per agent and device (one, unless a closed record was lost). */
  const open = new Map<string, Set<Stored>>();
  const openOf = (a: Pick<Anomaly, 'agentId' | 'deviceId'>): Set<Stored> => {
    const key = `${a.agentId}/${a.deviceId}`;
    let set = open.get(key);
    if (set === undefined) open.set(key, (set = new Set()));
    return set;
  };
  const dropOpen = (entry: Stored): void => {
    const key = `${entry.anomaly.agentId}/${entry.anomaly.deviceId}`;
    const set = open.get(key);
    set?.delete(entry);
    if (set?.size === 0) open.delete(key);
  };
  const forget = (entry: Stored): void => {
    byKey.delete(entry.key);
    dropOpen(entry);
  };
  const push = (stored: Stored): void => {
    byKey.set(stored.key, stored);
    entries.push(stored);
    if (stored.anomaly.episode?.state === EpisodeState.open) openOf(stored.anomaly).add(stored);
    if (entries.length > options.maxAnomalies) {
      for (const entry of entries.splice(0, entries.length - options.maxAnomalies)) forget(entry);
    }
  };
  /**
   * An agent keeps one open episode per device: an older one of the device still open when a
   * newer one arrives lost its closed record (the agent stopped without closing it), so it is
   * closed here, ended at the last time known. Its closed record, should it come late, changes nothing.
   */
  const supersedeOlder = (newer: Anomaly): void => {
    for (const entry of [...(open.get(`${newer.agentId}/${newer.deviceId}`) ?? [])]) {
      const a = entry.anomaly;
      const ep = a.episode;
      if (ep?.state !== EpisodeState.open || ep.startTs > newer.ts) continue;
      entry.anomaly = { ...a, episode: { ...ep, state: EpisodeState.closed, endTs: ep.lastSeenTs, reason: EpisodeCloseReason.superseded } };
      dropOpen(entry);
    }
  };
  return {
    add(anomaly, key, storedAtMs) {
      if (byKey.has(key)) return false;
      push({ anomaly, key, storedAtMs });
      return true;
    },
    addEpisode(record, storedAtMs) {
      const key = `${record.agentId}:episode:${record.body.episodeId}`;
      const known = byKey.get(key);
      if (known === undefined) {
        const anomaly = episodeAnomaly(record);
        supersedeOlder(anomaly);
        push({ anomaly, key, storedAtMs });
        return anomaly;
      }
      // An episode only ever goes from open to closed; the opened record's commit time stays.
      if (record.type === 'opened' || known.anomaly.episode?.state === EpisodeState.closed) return undefined;
      dropOpen(known);
      known.anomaly = { ...episodeAnomaly(record), receivedAtMs: known.anomaly.receivedAtMs };
      known.storedAtMs = storedAtMs;
      return known.anomaly;
    },
    query({ sinceMs, agentId, deviceId, limit }) {
      const matching = entries
        .filter(({ anomaly: a }) => activeUntil(a) >= sinceMs && (agentId === undefined || a.agentId === agentId) && (deviceId === undefined || a.deviceId === deviceId))
        .map((e) => e.anomaly);
      return matching.sort((a, b) => b.ts - a.ts).slice(0, limit);
    },
    prune(nowMs) {
      const oldestMs = nowMs - options.retentionMs;
      // A closed record refreshes its episode's time, so stale entries need not lie at the front.
      if (!entries.some((e) => e.storedAtMs < oldestMs)) return;
      entries = entries.filter((e) => {
        if (e.storedAtMs >= oldestMs) return true;
        forget(e);
        return false;
      });
    },
    size: () => entries.length,
  };
}
