// How numbers read on screen. Pure.

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'] as const;

/** 1536 -> "1.5 KiB" (binary units). */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(value < 10 ? 1 : 0)} ${BYTE_UNITS[unit]}`;
}

/** 1234567 -> "1,234,567". */
export function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}

/** Messages per second: "2.3/s", "41/s", "2.5k/s"; "–" when unknown. */
export function formatRate(perS: number | undefined): string {
  if (perS === undefined) return '–';
  if (perS >= 1000) return `${(perS / 1000).toFixed(1)}k/s`;
  return `${perS < 10 ? perS.toFixed(1) : Math.round(perS)}/s`;
}

/** A ratio 0..1 as a percent with one decimal, never "100.0 %" for a ratio below 1. */
export function formatPercent(ratio: number | undefined): string {
  if (ratio === undefined) return '–';
  const percent = Math.floor(ratio * 1000) / 10;
  return `${percent.toFixed(1)} %`;
}

/** "just now", "12 s ago", "3 min ago", "2 h ago", "4 d ago". */
export function formatAgo(thenMs: number | null | undefined, nowMs: number): string {
  if (thenMs === null || thenMs === undefined) return 'never';
  const s = Math.max(0, Math.round((nowMs - thenMs) / 1000));
  if (s < 2) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86_400)} d ago`;
}

/** Epoch ms as the browser's local time of day, 24 h. */
export function formatTime(ms: number): string {
  return new Date(ms).toLocaleTimeString('en-GB', { hour12: false });
}

/** A metric value: at most 4 significant digits, plain for integers. */
export function formatValue(value: number): string {
  if (Number.isInteger(value)) return String(value);
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 0.001 || abs >= 1e6)) return value.toExponential(2);
  return String(Number(value.toPrecision(4)));
}

/**
 * Share of a device's telemetry that arrived: received / (received + lost). Only telemetry
 * carries device seqs, so `received` is the telemetry count when the API gives counts by kind.
 * An evicted record of a device that sends seqs also leaves a seq hole, so gaps and evictions
 * overlap: lost is the larger of the two (a device without seqs has no gaps, only evictions).
 * Undefined while nothing is known.
 */
export function completeness(counts: { received: number; gaps: number; evicted: number; kinds?: Record<string, number> }): number | undefined {
  const received = counts.kinds?.['telemetry'] ?? counts.received;
  const expected = received + Math.max(counts.gaps, counts.evicted);
  return expected === 0 ? undefined : received / expected;
}

/**
 * Share of an agent's records that arrived: every record below its highest seq that is not a
 * gap, and evictions not yet inside a gap counted as lost too.
 */
export function agentCompleteness(totals: { received: number; gaps: number; evicted: number; explainedByEviction: number }): number | undefined {
  const lost = totals.gaps + Math.max(0, totals.evicted - totals.explainedByEviction);
  const expected = totals.received + lost;
  return expected === 0 ? undefined : totals.received / expected;
}

/**
 * A ratio 0..1 as a percent with up to 3 significant digits, for rates that live far below 1 %
 * ("0.2 %", "0.0412 %", "3 %"); never "100 %" for a ratio below 1; "–" when unknown.
 */
export function formatShare(ratio: number | null | undefined): string {
  if (ratio === null || ratio === undefined || !Number.isFinite(ratio)) return '–';
  if (ratio === 0) return '0 %';
  const percent = Number((ratio * 100).toPrecision(3));
  return `${ratio < 1 && percent >= 100 ? '99.9' : String(percent)} %`;
}

/** A span of time, whole seconds rounded up: "4 s", "1 min 5 s", "2 h 3 min". */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.ceil(ms / 1000));
  if (s < 60) return `${s} s`;
  const min = Math.floor(s / 60);
  if (min < 60) return s % 60 === 0 ? `${min} min` : `${min} min ${s % 60} s`;
  const h = Math.floor(min / 60);
  return min % 60 === 0 ? `${h} h` : `${h} h ${min % 60} min`;
}
