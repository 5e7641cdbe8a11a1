import type { CurvePoint } from '../evaluate/alarms.js';

/**
 * The detection vs false-alarm trade-off of a model as a small standalone SVG (written next to
 * the artifact by `models build`): x = false alarms per device-day (log scale; 0 at the left
 * edge), y = share of episodes detected while active, all types pooled and the worst type; the
 * manifest's threshold marked. Deterministic: same curve, same bytes.
 */

const WIDTH = 640;
const HEIGHT = 400;
const MARGIN = { left: 64, right: 24, top: 40, bottom: 56 };
/** x range: 0.01 to 1000 false alarms per device-day; 0 is drawn at the left edge. */
const X_MIN_LOG = -2;
const X_MAX_LOG = 3;

function fixed(x: number): string {
  return x.toFixed(1);
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function xOf(falseAlarms: number): number {
  const plot = WIDTH - MARGIN.left - MARGIN.right;
  const log = falseAlarms > 0 ? Math.log10(falseAlarms) : X_MIN_LOG;
  const clamped = Math.min(X_MAX_LOG, Math.max(X_MIN_LOG, log));
  return MARGIN.left + ((clamped - X_MIN_LOG) / (X_MAX_LOG - X_MIN_LOG)) * plot;
}

function yOf(rate: number, yMin: number): number {
  const plot = HEIGHT - MARGIN.top - MARGIN.bottom;
  return MARGIN.top + (1 - (Math.max(yMin, rate) - yMin) / (1 - yMin)) * plot;
}

/** Renders the curve; `threshold` is the manifest's (marked), `title` names the model and data. */
export function renderCurveSvg(curve: readonly CurvePoint[], threshold: number, title: string): string {
  const finite = curve.filter((p) => Number.isFinite(p.detectionRate) && Number.isFinite(p.falseAlarmsPerDeviceDay));
  const lowest = Math.min(1, ...finite.flatMap((p) => [p.detectionRate, Number.isFinite(p.worstTypeDetectionRate) ? p.worstTypeDetectionRate : 1]));
  // y from the nearest 10 % below the lowest rate shown, so the interesting part fills the plot.
  const yMin = Math.max(0, Math.floor(lowest * 10) / 10 - 0.1);
  const line = (rate: (p: CurvePoint) => number): string =>
    finite
      .filter((p) => Number.isFinite(rate(p)))
      .map((p, i) => `${i === 0 ? 'M' : 'L'}${fixed(xOf(p.falseAlarmsPerDeviceDay))},${fixed(yOf(rate(p), yMin))}`)
      .join(' ');
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    `<text x="${WIDTH / 2}" y="22" text-anchor="middle" font-size="14">${escapeXml(title)}</text>`,
  ];
  for (let e = X_MIN_LOG; e <= X_MAX_LOG; e++) {
    const x = fixed(xOf(10 ** e));
    parts.push(`<line x1="${x}" y1="${MARGIN.top}" x2="${x}" y2="${HEIGHT - MARGIN.bottom}" stroke="#ddd"/>`);
    parts.push(`<text x="${x}" y="${HEIGHT - MARGIN.bottom + 16}" text-anchor="middle">${e === X_MIN_LOG ? '0 (&lt;=0.01)' : String(10 ** e)}</text>`);
  }
  for (let r = Math.round(yMin * 100); r <= 100; r += yMin >= 0.5 ? 5 : 10) {
    const y = fixed(yOf(r / 100, yMin));
    parts.push(`<line x1="${MARGIN.left}" y1="${y}" x2="${WIDTH - MARGIN.right}" y2="${y}" stroke="#eee"/>`);
    parts.push(`<text x="${MARGIN.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${r}%</text>`);
  }
  const target = fixed(xOf(1));
  parts.push(
    `<line x1="${target}" y1="${MARGIN.top}" x2="${target}" y2="${HEIGHT - MARGIN.bottom}" stroke="#c00" stroke-dasharray="4 3"/>`,
    `<text x="${target}" y="${MARGIN.top - 4}" text-anchor="middle" fill="#c00">1 per device-day</text>`,
    // Points in threshold order, joined lightly: false alarms are not monotone in the threshold
    // (a higher one can split an alarm event in two), so the dots are the data.
    `<path d="${line((p) => p.detectionRate)}" fill="none" stroke="#1f5fbf" stroke-opacity="0.35"/>`,
    `<path d="${line((p) => p.worstTypeDetectionRate)}" fill="none" stroke="#e08a00" stroke-opacity="0.35" stroke-dasharray="6 3"/>`,
    ...finite.map((p) => `<circle cx="${fixed(xOf(p.falseAlarmsPerDeviceDay))}" cy="${fixed(yOf(p.detectionRate, yMin))}" r="2.5" fill="#1f5fbf"/>`),
    ...finite
      .filter((p) => Number.isFinite(p.worstTypeDetectionRate))
      .map((p) => `<rect x="${fixed(xOf(p.falseAlarmsPerDeviceDay) - 2)}" y="${fixed(yOf(p.worstTypeDetectionRate, yMin) - 2)}" width="4" height="4" fill="#e08a00"/>`),
  );
  const chosen = finite.find((p) => p.threshold === threshold);
  if (chosen !== undefined) {
    const [x, y] = [fixed(xOf(chosen.falseAlarmsPerDeviceDay)), fixed(yOf(chosen.detectionRate, yMin))];
    parts.push(
      `<circle cx="${x}" cy="${y}" r="6" fill="none" stroke="#000" stroke-width="1.5"/>`,
      `<text x="${WIDTH - MARGIN.right - 8}" y="${HEIGHT - MARGIN.bottom - 10}" text-anchor="end">circled: the manifest's threshold ${threshold.toPrecision(4)}: ${(chosen.detectionRate * 100).toFixed(1)}% detected, ${chosen.falseAlarmsPerDeviceDay.toFixed(2)} false alarms per device-day</text>`,
    );
  }
  parts.push(
    `<text x="${(MARGIN.left + WIDTH - MARGIN.right) / 2}" y="${HEIGHT - 14}" text-anchor="middle">false alarms per device-day (alarm events touching no fault)</text>`,
    `<text transform="translate(16 ${(MARGIN.top + HEIGHT - MARGIN.bottom) / 2}) rotate(-90)" text-anchor="middle">episodes detected while active</text>`,
    `<circle cx="${WIDTH - 208}" cy="${MARGIN.top + 14}" r="3" fill="#1f5fbf"/><text x="${WIDTH - 196}" y="${MARGIN.top + 18}">all types pooled</text>`,
    `<rect x="${WIDTH - 211}" y="${MARGIN.top + 29}" width="6" height="6" fill="#e08a00"/><text x="${WIDTH - 196}" y="${MARGIN.top + 36}">worst anomaly type</text>`,
    '</svg>',
  );
  return `${parts.join('\n')}\n`;
}
