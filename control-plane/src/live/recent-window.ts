// The recent window of each device: telemetry points and inference results that arrived in the
// last `windowMs`, bounded per device and in number of devices. Pure and in memory: each
// replica rebuilds it from the uplink stream at start (./live-view.ts), so it holds nothing
// that could not be read again.
import type { InferencePoint, SeriesPoint } from '@outpost/shared';
import type { LiveRecord } from './live-record.js';

export interface RecentWindowOptions {
  /** Entries older than this (by arrival in the stream) are dropped by `prune`. */
  windowMs: number;
  /** Telemetry points kept per device, and as many inference results; the oldest arrivals go first. */
  maxPointsPerDevice: number;
  /** Devices kept; beyond it the device updated longest ago is forgotten. */
  maxDevices: number;
}

interface Stored<T> {
  value: T;
  key: string;
  /** When the stream stored it (server clock), epoch ms. */
  storedAtMs: number;
}

interface DeviceWindow {
  /** In arrival order, so pruning and bounding take from the front. */
  points: Stored<SeriesPoint>[];
  inference: Stored<InferencePoint>[];
  keys: Set<string>;
}

export interface DeviceSeries {
  points: SeriesPoint[];
  inference: InferencePoint[];
}

export interface RecentWindow {
  /** Adds a record; false when it is already there (the same record resent in another batch). */
  add(record: LiveRecord, storedAtMs: number): boolean;
  /** True when the device has anything in the window. */
  has(agentId: string, deviceId: string): boolean;
  /** The device's entries with `ts >= sinceMs`, by `ts` ascending; undefined when it has none. */
  series(agentId: string, deviceId: string, sinceMs?: number): DeviceSeries | undefined;
  /** Drops entries stored before `nowMs - windowMs`, and devices left empty. */
  prune(nowMs: number): void;
  devices(): number;
}

/** `/` is in neither an agent id nor a device id. */
const deviceKey = (agentId: string, deviceId: string): string => `${agentId}/${deviceId}`;

const byTs = (a: { ts: number }, b: { ts: number }): number => a.ts - b.ts;

/**
 * One result can arrive twice: as an `inference` record and again as an `anomaly` record. A
 * summary is its own point, even when its last row is an anomaly of the same time.
 */
const resultKey = (r: InferencePoint): string => `${r.summary === undefined ? 'r' : 's'}\u0000${r.ts}\u0000${r.model.name}\u0000${r.model.version}`;

/** Drops the first `count` entries of `list` and their keys. */
function dropFront<T>(list: Stored<T>[], count: number, keys: Set<string>): void {
  if (count <= 0) return;
  for (const entry of list.splice(0, count)) keys.delete(entry.key);
}

/** An empty window; entries come in with `add`, go with `prune` and the bounds. */
export function createRecentWindow(options: RecentWindowOptions): RecentWindow {
  const { windowMs, maxPointsPerDevice, maxDevices } = options;
  // A Map keeps insertion order: re-inserting on every update makes its first key the device updated longest ago.
  const windows = new Map<string, DeviceWindow>();

  const touch = (key: string): DeviceWindow => {
    let w = windows.get(key);
    if (w === undefined) {
      w = { points: [], inference: [], keys: new Set() };
      if (windows.size >= maxDevices) windows.delete(windows.keys().next().value as string);
    } else {
      windows.delete(key);
    }
    windows.set(key, w);
    return w;
  };

  return {
    add(record, storedAtMs) {
      const existing = windows.get(deviceKey(record.agentId, record.deviceId));
      if (existing?.keys.has(record.key)) return false;
      const w = touch(deviceKey(record.agentId, record.deviceId));
      w.keys.add(record.key);
      if (record.type === 'telemetry') {
        w.points.push({ value: { ts: record.ts, receivedAtMs: record.receivedAtMs, metrics: record.metrics }, key: record.key, storedAtMs });
        dropFront(w.points, w.points.length - maxPointsPerDevice, w.keys);
      } else {
        w.inference.push({ value: record.result, key: record.key, storedAtMs });
        dropFront(w.inference, w.inference.length - maxPointsPerDevice, w.keys);
      }
      return true;
    },
    has: (agentId, deviceId) => windows.has(deviceKey(agentId, deviceId)),
    series(agentId, deviceId, sinceMs = Number.NEGATIVE_INFINITY) {
      const w = windows.get(deviceKey(agentId, deviceId));
      if (w === undefined) return undefined;
      const points = w.points.filter((p) => p.value.ts >= sinceMs).map((p) => p.value);
      const results = new Map<string, InferencePoint>();
      for (const { value } of w.inference) {
        if (value.ts < sinceMs) continue;
        const key = resultKey(value);
        const known = results.get(key);
        // Of the two copies of one result, keep the one that carries the threshold.
        if (known === undefined || (known.threshold === undefined && value.threshold !== undefined)) results.set(key, value);
      }
      // Stable sorts: equal timestamps keep their arrival order.
      return { points: points.sort(byTs), inference: [...results.values()].sort(byTs) };
    },
    prune(nowMs) {
      const oldestMs = nowMs - windowMs;
      for (const [key, w] of windows) {
        for (const list of [w.points, w.inference] as Stored<unknown>[][]) {
          // Arrival order is stream order, so stored times grow along the list (inference results
          // come from two tails, the lanes, so an entry may wait behind a newer one for a while).
          let stale = 0;
          while (stale < list.length && list[stale]!.storedAtMs < oldestMs) stale++;
          dropFront(list, stale, w.keys);
        }
        if (w.points.length === 0 && w.inference.length === 0) windows.delete(key);
      }
    },
    devices: () => windows.size,
  };
}
