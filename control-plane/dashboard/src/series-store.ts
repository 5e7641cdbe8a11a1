// The device view's data: telemetry points and inference results of the last minutes, from
// the /series answer and then from live events, in time order, each record once (the two
// sources overlap while the view opens), bounded in time and in count.
import type { InferencePoint, SeriesPoint } from './api-types.js';

/** How far back the device view looks: 5 minutes. */
export const DEFAULT_WINDOW_MS = 5 * 60_000;
/** At most this many points (and as many inference results) are kept per device. */
export const DEFAULT_MAX_POINTS = 20_000;
/** At most this many metrics get a chart; the rest are listed. */
export const MAX_CHARTED_METRICS = 12;

/** Records past the horizon are dropped once this many have gathered. */
const TRIM_STEP = 256;

/** uPlot's data: x values (seconds) then one array per series; null is a hole. */
export type AlignedData = [number[], ...(number | null)[][]];

interface Keyed {
  ts: number;
}

/** Inserts in ts order (appending in the common case); false when `same` finds it already there. */
function insertSorted<T extends Keyed>(list: T[], item: T, same: (a: T, b: T) => boolean): boolean {
  let i = list.length;
  while (i > 0 && list[i - 1]!.ts > item.ts) i--;
  for (let j = i - 1; j >= 0 && list[j]!.ts === item.ts; j--) if (same(list[j]!, item)) return false;
  list.splice(i, 0, item);
  return true;
}

const samePoint = (a: SeriesPoint, b: SeriesPoint): boolean => a.receivedAtMs === b.receivedAtMs;
const sameInference = (a: InferencePoint, b: InferencePoint): boolean => a.model.name === b.model.name && a.model.version === b.model.version;

/**
 * One device's records for its charts (see the module comment); mutated in place by the
 * device view, which redraws from it.
 */
export class SeriesStore {
  readonly windowMs: number;
  readonly maxPoints: number;
  readonly points: SeriesPoint[] = [];
  readonly inference: InferencePoint[] = [];
  /** Anomalies by time, from inference results and anomaly events alike. */
  readonly anomalies: InferencePoint[] = [];
  /**
   * How many held points carry each metric: names come and go with the points, so a metric a
   * device stopped sending leaves the charts once its points left the window, and a long-open
   * page does not collect every name a device ever sent.
   */
  readonly #metricCounts = new Map<string, number>();

  constructor(windowMs = DEFAULT_WINDOW_MS, maxPoints = DEFAULT_MAX_POINTS) {
    this.windowMs = windowMs;
    this.maxPoints = maxPoints;
  }

  /** Adds a reading; false when it was already there or is older than the window. */
  addPoint(point: SeriesPoint): boolean {
    if (point.ts < this.horizonMs()) return false;
    if (!insertSorted(this.points, point, samePoint)) return false;
    this.#count(point, 1);
    this.#trim();
    return true;
  }

  /** Adds an inference result (and its anomaly, if flagged); false when already there or too old. */
  addInference(result: InferencePoint): boolean {
    if (result.ts < this.horizonMs()) return false;
    const added = insertSorted(this.inference, result, sameInference);
    if (result.anomaly) this.addAnomaly(result);
    if (added) this.#trim();
    return added;
  }

  /** Adds an anomaly (kept, within `maxPoints`, after it leaves the window); false when already there. */
  addAnomaly(result: InferencePoint): boolean {
    return insertSorted(this.anomalies, { ...result, anomaly: true }, sameInference);
  }

  /** The newest time seen (device clock, which may differ from the browser's), epoch ms. */
  latestMs(): number | undefined {
    const last = Math.max(this.points.at(-1)?.ts ?? -Infinity, this.inference.at(-1)?.ts ?? -Infinity);
    return Number.isFinite(last) ? last : undefined;
  }

  /** Records older than this fall out of the window. */
  horizonMs(): number {
    const latest = this.latestMs();
    return latest === undefined ? -Infinity : latest - this.windowMs;
  }

  /** The metrics of the points held, sorted. */
  metricNames(): string[] {
    return [...this.#metricCounts.keys()].sort();
  }

  /** `[seconds, values]` of one metric, holes where a reading lacks it. */
  metricData(metric: string): AlignedData {
    const xs = this.points.map((p) => p.ts / 1000);
    const ys = this.points.map((p) => p.metrics[metric] ?? null);
    return [xs, ys];
  }

  /** `[seconds, score, anomaly score, threshold]` over inference results and anomalies. */
  scoreData(): AlignedData {
    const merged = new Map<number, { score: number | null; anomaly: number | null; threshold: number | null }>();
    for (const r of this.inference) merged.set(r.ts, { score: r.score, anomaly: r.anomaly ? r.score : null, threshold: r.threshold ?? null });
    for (const a of this.anomalies) {
      if (a.ts < this.horizonMs()) continue;
      const entry = merged.get(a.ts);
      if (entry === undefined) merged.set(a.ts, { score: null, anomaly: a.score, threshold: a.threshold ?? null });
      else entry.anomaly = a.score;
    }
    const rows = [...merged].sort((a, b) => a[0] - b[0]);
    return [rows.map(([ts]) => ts / 1000), rows.map(([, r]) => r.score), rows.map(([, r]) => r.anomaly), rows.map(([, r]) => r.threshold)];
  }

  /** Anomalies inside the window, oldest first. */
  anomaliesInWindow(): InferencePoint[] {
    const horizon = this.horizonMs();
    return this.anomalies.filter((a) => a.ts >= horizon);
  }

  #count(point: SeriesPoint, delta: 1 | -1): void {
    for (const name of Object.keys(point.metrics)) {
      const n = (this.#metricCounts.get(name) ?? 0) + delta;
      if (n > 0) this.#metricCounts.set(name, n);
      else this.#metricCounts.delete(name);
    }
  }

  #trim(): void {
    const horizon = this.horizonMs();
    const drop = <T extends Keyed>(list: T[]): T[] => {
      let n = 0;
      while (n < list.length && list[n]!.ts < horizon) n++;
      n = Math.max(n, list.length - this.maxPoints);
      // Splicing the front is O(length): do it in steps, not once per record.
      return n >= TRIM_STEP || (n > 0 && list.length > this.maxPoints) ? list.splice(0, n) : [];
    };
    for (const point of drop(this.points)) this.#count(point, -1);
    drop(this.inference);
    // Anomalies stay listed after they leave the chart, within the same bound.
    if (this.anomalies.length > this.maxPoints) this.anomalies.splice(0, this.anomalies.length - this.maxPoints);
  }
}
