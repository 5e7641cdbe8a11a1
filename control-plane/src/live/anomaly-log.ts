// Anomalies (kind `anomaly`, events lane) kept longer than the recent window, bounded in age and
// count. Pure and in memory, rebuilt from the uplink stream at start like the recent window.
import type { Anomaly } from '@outpost/shared';

export interface AnomalyLogOptions {
  /** Anomalies stored in the stream before `now - retentionMs` are dropped by `prune`. */
  retentionMs: number;
  /** Anomalies kept; the oldest arrivals go first. */
  maxAnomalies: number;
}

export interface AnomalyQuery {
  /** Only anomalies with `ts >= sinceMs` (device time). */
  sinceMs: number;
  agentId?: string | undefined;
  deviceId?: string | undefined;
  limit: number;
}

export interface AnomalyLog {
  /** Adds an anomaly; false when the record (same `key`) is already there. */
  add(anomaly: Anomaly, key: string, storedAtMs: number): boolean;
  /** Matching anomalies, newest (by `ts`) first, at most `limit`. */
  query(query: AnomalyQuery): Anomaly[];
  prune(nowMs: number): void;
  size(): number;
}

interface Stored {
  anomaly: Anomaly;
  key: string;
  storedAtMs: number;
}

/** An empty log; anomalies come in with `add`, go with `prune` and the count bound. */
export function createAnomalyLog(options: AnomalyLogOptions): AnomalyLog {
  // Arrival (stream) order, so pruning by age and by count both take from the front.
  const entries: Stored[] = [];
  const keys = new Set<string>();
  const dropFront = (count: number): void => {
    for (const entry of entries.splice(0, count)) keys.delete(entry.key);
  };
  return {
    add(anomaly, key, storedAtMs) {
      if (keys.has(key)) return false;
      keys.add(key);
      entries.push({ anomaly, key, storedAtMs });
      if (entries.length > options.maxAnomalies) dropFront(entries.length - options.maxAnomalies);
      return true;
    },
    query({ sinceMs, agentId, deviceId, limit }) {
      const matching = entries
        .filter(({ anomaly: a }) => a.ts >= sinceMs && (agentId === undefined || a.agentId === agentId) && (deviceId === undefined || a.deviceId === deviceId))
        .map((e) => e.anomaly);
      return matching.sort((a, b) => b.ts - a.ts).slice(0, limit);
    },
    prune(nowMs) {
      const oldestMs = nowMs - options.retentionMs;
      let stale = 0;
      while (stale < entries.length && entries[stale]!.storedAtMs < oldestMs) stale++;
      dropFront(stale);
    },
    size: () => entries.length,
  };
}
