// What `rollout status --watch` shows, as pure functions of the rollout view: the frame a
// terminal redraws in place, and the lines a log (stdout not a terminal) gets appended when
// something changed. The watch loop (watch.ts) does the I/O.
import type { HistoryEntry, RolloutStatus, RolloutView } from '@outpost/shared';
import { describeStatus, gateValues, progressBar, progressCounts, statusStyle, waveStateStyle, waveStateText } from './rollout-format.js';
import type { Style } from './style.js';
import type { Line } from './terminal.js';
import { formatTime } from './time.js';

/** How the event stream is doing, for the frame's last line. */
export type StreamState = { state: 'connecting' } | { state: 'live' } | { state: 'down'; reason: string; retryInMs: number };

/** History entries a frame shows under the waves. */
export const FRAME_HISTORY_ENTRIES = 3;

function historyText(h: HistoryEntry): string {
  const wave = h.wave === undefined ? '' : ` wave ${h.wave + 1}`;
  return `#${h.seq} ${formatTime(h.atMs)} ${h.actor} ${h.action}${wave}${h.detail === '' ? '' : `: ${h.detail}`}`;
}

/**
 * The frame of a terminal: the rollout and its status, one progress bar per wave, the reason
 * when paused or failed, the newest history entries, how fresh the data is.
 */
export function renderWatchFrame(view: RolloutView, nowMs: number, style: Style, stream: StreamState, problem?: string): Line[] {
  const lines: Line[] = [
    [
      { text: `Rollout ${view.id}`, style: style.bold },
      { text: ` (${view.spec.name}): ` },
      { text: describeStatus(view), style: statusStyle(view.status, style) },
      { text: view.model === null ? '' : `  model ${view.model.name}@${view.model.version}` },
      { text: view.configVersion === null ? '' : `  config ${view.configVersion}` },
    ],
  ];
  const indexWidth = String(view.progress.length).length;
  for (const p of view.progress) {
    lines.push([
      { text: `  wave ${String(p.index + 1).padStart(indexWidth)} ` },
      ...progressBar(p, style, false),
      { text: ` ${progressCounts(p).padEnd(28)} ` },
      { text: waveStateText(p, nowMs, true), style: waveStateStyle(p.state, style) },
    ]);
  }
  if (view.reason !== undefined) lines.push([{ text: `  ${view.reason}`, style: statusStyle(view.status, style) }]);
  for (const h of view.history.slice(-FRAME_HISTORY_ENTRIES)) lines.push([{ text: `  ${historyText(h)}`, style: style.dim }]);
  const freshness =
    problem !== undefined
      ? { text: `  ${problem}; trying again`, style: style.yellow }
      : stream.state === 'live'
        ? { text: '  live (Ctrl-C stops watching)', style: style.dim }
        : stream.state === 'connecting'
          ? { text: '  connecting to the event stream; re-reading every second (Ctrl-C stops watching)', style: style.dim }
          : { text: `  event stream down (${stream.reason}), again in ${Math.ceil(stream.retryInMs / 1000)}s; re-reading every second`, style: style.yellow };
  lines.push([freshness]);
  return lines;
}

/** What a log has been told so far. */
export interface LogState {
  status: RolloutStatus | undefined;
  /** Highest history seq printed. */
  seq: number;
  /** Last progress line printed per wave. */
  waves: Map<number, string>;
}

export function createLogState(): LogState {
  return { status: undefined, seq: 0, waves: new Map() };
}

/**
 * The lines to append for `view` given what `state` says was printed, and `state` brought up to
 * date: the status when it changed, each new history entry (with its gate values), each wave
 * whose progress changed. Times are absolute (a soak's end, not a countdown), so an unchanged
 * rollout adds nothing.
 */
export function logLines(state: LogState, view: RolloutView, nowMs: number, style: Style): string[] {
  const out: string[] = [];
  if (view.status !== state.status) {
    out.push(`rollout ${view.id}: ${describeStatus(view)}${view.reason === undefined ? '' : ` (${view.reason})`}`);
    state.status = view.status;
  }
  for (const h of view.history) {
    if (h.seq <= state.seq) continue;
    out.push(historyText(h));
    for (const g of h.gates ?? []) {
      const { measured, thresholds } = gateValues(g);
      out.push(`    ${g.gate} ${g.outcome}: ${measured} (thresholds ${thresholds}) ${g.detail}`);
    }
    state.seq = h.seq;
  }
  for (const p of view.progress) {
    const bar = progressBar(p, style, true)
      .map((s) => s.text)
      .join('');
    const line = `wave ${p.index + 1} ${bar} ${progressCounts(p)}, ${waveStateText(p, nowMs, false)}`;
    if (state.waves.get(p.index) === line) continue;
    out.push(line);
    state.waves.set(p.index, line);
  }
  return out;
}
