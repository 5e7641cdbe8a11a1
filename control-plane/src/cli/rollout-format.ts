// Human output of the model and rollout commands: the stored model, the model list, a dry run's
// plan, the rollout list, one rollout's status (waves with progress, gate values with their
// thresholds, history) and what an operator action did. Waves are numbered from 1, as the
// control plane's own messages number them.
import type {
  GateResult,
  HistoryEntry,
  ModelEntry,
  ModelListResponse,
  RolloutListResponse,
  RolloutPlan,
  RolloutSpec,
  RolloutStatus,
  RolloutView,
  WaveProgress,
} from '@outpost/shared';
import { formatBytes, formatLabels } from './format.js';
import type { Style } from './style.js';
import { formatFields, formatTable, type Cell } from './table.js';
import type { Segment } from './terminal.js';
import { formatAge, formatTime } from './time.js';

const NONE = '-';
/** Hex digits of a sha256 shown in tables. */
export const SHORT_SHA256_LENGTH = 12;
/** Characters of a progress bar. */
export const PROGRESS_BAR_WIDTH = 20;

const header = (style: Style) => ({ header: style.bold });
const shortSha = (sha256: string): string => sha256.slice(0, SHORT_SHA256_LENGTH);
const isoTime = (iso: string): string => {
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? iso : formatTime(ms);
};

/** `500ms`, `3s`, `1m30s`, `2h`, `1d`: a spec's durations as they are usually written. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms < 1_000) return `${ms}ms`;
  const parts: string[] = [];
  let rest = ms;
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1_000]] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  if (rest > 0) parts.push(`${rest}ms`);
  return parts.join('');
}

/** A rollout status coloured by what it means: done well, needs a look, gone wrong. */
export function statusStyle(status: RolloutStatus, style: Style): (text: string) => string {
  switch (status) {
    case 'succeeded':
      return style.green;
    case 'paused':
      return style.yellow;
    case 'failed':
    case 'rolled-back':
    case 'aborted':
      return style.red;
    default:
      return style.bold;
  }
}

export function waveStateStyle(state: WaveProgress['state'], style: Style): ((text: string) => string) | undefined {
  return { passed: style.green, failed: style.red, inconclusive: style.yellow, waiting: style.dim, applying: undefined, soaking: undefined }[state];
}

// ---------------------------------------------------------------------------------------
// Models
// ---------------------------------------------------------------------------------------

/** `models publish`: the entry the store holds; `created` false when the same bytes were there already. */
export function formatModelEntry(entry: ModelEntry, created: boolean, style: Style): string {
  return formatFields(
    [
      ['Model', `${entry.name}@${entry.version} ${created ? style.green('(published)') : '(already stored with the same bytes)'}`],
      ['SHA-256', `${shortSha(entry.sha256)} (${entry.sha256})`],
      ['Size', formatBytes(entry.sizeBytes)],
      ['Key', entry.keyId],
      ['Threshold', String(entry.threshold)],
      ['Metrics', entry.metrics.join(', ') || NONE],
      ['Expires', isoTime(entry.expiresAt)],
      ['Stored', isoTime(entry.storedAt)],
    ],
    header(style),
  );
}

/** `models ls`: one row per stored version. */
export function formatModelList(body: ModelListResponse, nowMs: number, style: Style): string {
  if (body.models.length === 0) return 'No models yet; publish one with `outpostctl models publish FILE.manifest.json`.\n';
  return formatTable(
    [{ header: 'NAME' }, { header: 'VERSION' }, { header: 'SHA256' }, { header: 'SIZE', align: 'right' }, { header: 'KEY' }, { header: 'STORED' }, { header: 'EXPIRES' }],
    body.models.map((m) => {
      const expiresMs = Date.parse(m.expiresAt);
      const expires: Cell = expiresMs <= nowMs ? { text: `${isoTime(m.expiresAt)} (expired)`, style: style.red } : isoTime(m.expiresAt);
      return [m.name, m.version, shortSha(m.sha256), formatBytes(m.sizeBytes), m.keyId, isoTime(m.storedAt), expires];
    }),
    header(style),
  );
}

// ---------------------------------------------------------------------------------------
// Rollouts
// ---------------------------------------------------------------------------------------

/** Leaf keys of a config patch, two levels deep: `ingest.rateLimitMsgsPerS`, `labels`. */
function patchKeys(patch: Readonly<Record<string, unknown>>): string[] {
  return Object.entries(patch).flatMap(([section, value]) =>
    section !== 'labels' && value !== null && typeof value === 'object' && !Array.isArray(value) ? Object.keys(value).map((k) => `${section}.${k}`) : [section],
  );
}

function describeChange(spec: RolloutSpec, model: RolloutView['model'] | string | null, configVersion: string | null): string {
  const parts: string[] = [];
  if (model !== null) parts.push(typeof model === 'string' ? `model ${model}` : `model ${model.name}@${model.version} (sha256 ${shortSha(model.sha256)})`);
  if (spec.change.config !== undefined) parts.push(`config ${configVersion ?? NONE} (${patchKeys(spec.change.config).join(', ')})`);
  if (spec.change.allowListenerRestart) parts.push('may close device connections');
  return parts.join('; ');
}

function describeSelector(selector: RolloutSpec['selector']): string {
  const parts: string[] = [];
  if (Object.keys(selector.labels).length > 0) parts.push(`labels ${formatLabels(selector.labels)}`);
  if (selector.agents !== undefined) parts.push(`agents ${selector.agents.join(', ')}`);
  return parts.length === 0 ? 'every agent' : parts.join('; ');
}

function describeStrategy(spec: RolloutSpec): string {
  const s = spec.strategy;
  return `waves ${s.waves.join(', ')}; soak ${formatDuration(s.soak)}; wave deadline ${formatDuration(s.waveDeadline)}; failure budget ${s.failureBudget}; on failure ${spec.onFailure}`;
}

/** The gates as configured, with their thresholds. */
export function describeGates(gates: RolloutSpec['gates']): string {
  const parts = ['applied'];
  if (gates.healthy) parts.push('healthy');
  if (gates.inferenceErrorRate !== undefined) parts.push(`inference error rate <= ${gates.inferenceErrorRate.max} (>= ${gates.inferenceErrorRate.minRows} rows)`);
  const a = gates.anomalyRate;
  if (a !== undefined) parts.push(`anomaly rate <= ${a.maxRatio}x the others (floor ${a.floorRate}), >= ${a.minRatio}x once ${a.minExpectedAnomalies} are expected (>= ${a.minRows} rows)`);
  return parts.join('; ');
}

/** `rollout create --dry-run`: which agent goes in which wave and why, and which are left out and why. */
export function formatPlan(plan: RolloutPlan, style: Style): string {
  const selected = plan.waves.reduce((n, w) => n + w.agents.length, 0);
  let out = `Dry run, nothing created: rollout ${plan.id} would change ${describeChange(plan.spec, plan.model, plan.configVersion)} on ${selected} agent(s) in ${plan.waves.length} wave(s).\n`;
  out += `Agents are ordered by sha256("${plan.id}:<agent id>") (ORDER KEY, its first ${SHORT_SHA256_LENGTH} hex digits); RANK is the place in that order, and wave after wave takes the next slice of it (waves ${plan.spec.strategy.waves.join(', ')}).\n`;
  if (plan.spec.id === undefined) out += `The id comes from the name and the time, so the order changes on create; give the spec an \`id\` to keep this plan.\n`;
  out += '\n';
  const rows: Cell[][] = plan.waves.flatMap((w) =>
    w.agents.length === 0 ? [[String(w.index + 1), NONE, { text: '(no agent)', style: style.dim }, NONE, NONE]] : w.agents.map((a) => [String(w.index + 1), String(a.rank), a.agentId, a.orderKey, formatLabels(a.labels)]),
  );
  out += formatTable([{ header: 'WAVE', align: 'right' }, { header: 'RANK', align: 'right' }, { header: 'AGENT' }, { header: 'ORDER KEY' }, { header: 'LABELS' }], rows, header(style));
  out += `\nSelector: ${describeSelector(plan.spec.selector)}.`;
  if (plan.excluded.length === 0) return `${out} No known agent is left out.\n`;
  out += ` Left out (${plan.excluded.length}):\n`;
  out += formatTable([{ header: 'AGENT' }, { header: 'REASON' }], plan.excluded.map((e) => [e.agentId, e.reason]), header(style));
  return out;
}

/** `rollout ls`: newest first, as the API answers. */
export function formatRolloutList(body: RolloutListResponse, nowMs: number, style: Style): string {
  if (body.rollouts.length === 0) return 'No rollouts yet.\n';
  return formatTable(
    [{ header: 'ID' }, { header: 'NAME' }, { header: 'STATUS' }, { header: 'WAVE', align: 'right' }, { header: 'TARGETS', align: 'right' }, { header: 'CHANGE' }, { header: 'CREATED' }, { header: 'BY' }],
    body.rollouts.map((r) => [
      r.id,
      r.name,
      { text: r.status, style: statusStyle(r.status, style) },
      `${Math.min(r.wave + 1, r.waves)}/${r.waves}`,
      String(r.targets),
      [r.model === null ? undefined : `model ${r.model}`, r.configVersion === null ? undefined : `config ${r.configVersion}`].filter((p) => p !== undefined).join(', ') || NONE,
      formatAge(r.createdAtMs, nowMs),
      r.createdBy,
    ]),
    header(style),
  );
}

/** Gate values that are thresholds (what the measured values are held against). */
const THRESHOLD_KEYS: ReadonlySet<string> = new Set(['budget', 'max', 'minRows', 'maxRate', 'minRatio']);

const formatValue = (value: number | string | null): string => (value === null ? 'n/a' : typeof value === 'number' ? String(value) : JSON.stringify(value));

/** A gate's measured values and its thresholds, `k=v` each. */
export function gateValues(gate: GateResult): { measured: string; thresholds: string } {
  const entries = Object.entries(gate.values);
  const pick = (threshold: boolean): string =>
    entries
      .filter(([k]) => THRESHOLD_KEYS.has(k) === threshold)
      .map(([k, v]) => `${k}=${formatValue(v)}`)
      .join(' ') || NONE;
  return { measured: pick(false), thresholds: pick(true) };
}

function gateTable(gates: readonly GateResult[], style: Style): string {
  const outcome = (g: GateResult): Cell => ({ text: g.outcome, style: g.outcome === 'pass' ? style.green : g.outcome === 'fail' ? style.red : style.yellow });
  return formatTable(
    [{ header: 'GATE' }, { header: 'OUTCOME' }, { header: 'MEASURED' }, { header: 'THRESHOLDS' }, { header: 'DETAIL' }],
    gates.map((g) => {
      const { measured, thresholds } = gateValues(g);
      return [g.gate, outcome(g), measured, thresholds, g.detail];
    }),
    header(style),
  );
}

/** `applied 1/2, 1 refused, 0 pending`. */
export function progressCounts(p: WaveProgress): string {
  return `${p.applied}/${p.agents} applied${p.refused > 0 ? `, ${p.refused} refused` : ''}${p.pending > 0 ? `, ${p.pending} pending` : ''}`;
}

/**
 * A wave's progress bar: applied, refused, then pending/not started. `ascii` draws `#`, `x`
 * and `-` (logs); otherwise block characters.
 */
export function progressBar(p: WaveProgress, style: Style, ascii: boolean, width = PROGRESS_BAR_WIDTH): Segment[] {
  // Rounded cumulatively, so the two parts never add up to more than their sum would.
  const cells = (n: number): number => (p.agents === 0 ? 0 : Math.min(width, Math.round((n / p.agents) * width)));
  const applied = p.state === 'passed' && p.agents === 0 ? width : cells(p.applied);
  const refused = Math.max(0, cells(p.applied + p.refused) - applied);
  const rest = width - applied - refused;
  const [full, bad, empty] = ascii ? ['#', 'x', '-'] : ['█', '█', '░'];
  return [
    { text: '[' },
    { text: full.repeat(applied), style: style.green },
    { text: bad.repeat(refused), style: style.red },
    { text: empty.repeat(rest), style: style.dim },
    { text: ']' },
  ];
}

/** A wave's state; soaking with the time left (`countdown`) or the time it ends (stable, for logs). */
export function waveStateText(p: WaveProgress, nowMs: number, countdown: boolean): string {
  if (p.state !== 'soaking' || p.soakEndsAtMs === undefined) return p.state;
  if (!countdown) return `soaking until ${formatTime(p.soakEndsAtMs)}`;
  return `soaking, ${formatDuration(Math.max(0, Math.ceil((p.soakEndsAtMs - nowMs) / 1_000)) * 1_000)} left`;
}

/** One history entry as a table row: SEQ, TIME, ACTOR, ACTION, WAVE, STATUS, DETAIL. */
function historyRow(h: HistoryEntry, style: Style): Cell[] {
  return [String(h.seq), formatTime(h.atMs), h.actor, h.action, h.wave === undefined ? NONE : String(h.wave + 1), { text: h.status, style: statusStyle(h.status, style) }, h.detail || NONE];
}

export function formatHistory(entries: readonly HistoryEntry[], style: Style): string {
  return formatTable(
    [{ header: 'SEQ', align: 'right' }, { header: 'TIME' }, { header: 'ACTOR' }, { header: 'ACTION' }, { header: 'WAVE', align: 'right' }, { header: 'STATUS' }, { header: 'DETAIL' }],
    entries.map((h) => historyRow(h, style)),
    header(style),
  );
}

/** `running, wave 2 of 3`. */
export function describeStatus(view: Pick<RolloutView, 'status' | 'wave' | 'waves'>): string {
  return view.status === 'pending' ? 'pending' : `${view.status}, wave ${view.wave + 1} of ${view.waves.length}`;
}

/** `rollout status`: the rollout, its waves with progress, the gate values of each judged wave, the history. */
export function formatRolloutStatus(view: RolloutView, nowMs: number, style: Style): string {
  const spec = view.spec;
  const fields: [string, string][] = [
    ['Rollout', `${view.id} (${spec.name})`],
    ['Status', statusStyle(view.status, style)(describeStatus(view))],
  ];
  if (view.reason !== undefined) fields.push(['Reason', view.reason]);
  fields.push(
    ['Change', describeChange(spec, view.model, view.configVersion)],
    ['Selector', describeSelector(spec.selector)],
    ['Strategy', describeStrategy(spec)],
    ['Gates', describeGates(spec.gates)],
  );
  if (spec.startAt !== undefined) fields.push(['Start at', spec.startAt]);
  if (spec.maintenanceWindow !== undefined) fields.push(['Window', `${spec.maintenanceWindow.start} to ${spec.maintenanceWindow.end} UTC`]);
  fields.push(
    ['Targets', `${view.targets.length} agent(s) changed so far; ${view.plannedAgents} selected now`],
    ['Created', `${formatTime(view.createdAtMs)} (${formatAge(view.createdAtMs, nowMs)}) by ${view.createdBy}`],
    ['Updated', `${formatTime(view.updatedAtMs)} (${formatAge(view.updatedAtMs, nowMs)})`],
  );
  let out = formatFields(fields, header(style));

  out += '\n';
  out += formatTable(
    [
      { header: 'WAVE', align: 'right' },
      { header: 'AGENTS', align: 'right' },
      { header: 'APPLIED', align: 'right' },
      { header: 'REFUSED', align: 'right' },
      { header: 'PENDING', align: 'right' },
      { header: 'PROGRESS' },
      { header: 'STATE' },
    ],
    view.progress.map((p) => [
      String(p.index + 1),
      String(p.agents),
      String(p.applied),
      p.refused > 0 ? { text: String(p.refused), style: style.red } : String(p.refused),
      String(p.pending),
      { text: progressBar(p, style, true).map((s) => s.text).join('') },
      { text: waveStateText(p, nowMs, true), style: waveStateStyle(p.state, style) },
    ]),
    header(style),
  );

  for (const wave of view.waves) {
    if (wave.gates.length === 0 && wave.failed.length === 0) continue;
    out += `\nWave ${wave.index + 1}${wave.outcome === undefined ? '' : ` ${wave.outcome}`}:\n`;
    if (wave.gates.length > 0) out += gateTable(wave.gates, style);
    if (wave.failed.length > 0) out += `Failed agents: ${wave.failed.map((f) => `${f.agentId} (${f.reason})`).join(', ')}\n`;
  }

  out += '\nHistory:\n';
  out += formatHistory(view.history, style);
  return out;
}

/** History actions each operator action writes (resume of a judged last wave ends the rollout). */
const ACTION_ENTRIES: Readonly<Record<string, readonly HistoryEntry['action'][]>> = {
  pause: ['paused'],
  resume: ['resumed', 'succeeded'],
  abort: ['aborted'],
  rollback: ['rollback'],
};

/** The history entry an operator action added: the newest of its kind (a controller step may have followed it). */
export function entryOfAction(view: RolloutView, action: string): HistoryEntry | undefined {
  const kinds = ACTION_ENTRIES[action] ?? [];
  return view.history.findLast((h) => kinds.includes(h.action) && h.actor !== 'controller');
}

/** `rollout pause|resume|abort|rollback`: the new status and the history entry the action added. */
export function formatActionResult(view: RolloutView, action: string, style: Style): string {
  let out = `Rollout ${view.id}: ${statusStyle(view.status, style)(describeStatus(view))}${view.reason === undefined ? '' : ` (${view.reason})`}\n`;
  const entry = entryOfAction(view, action);
  if (entry !== undefined) out += formatHistory([entry], style);
  return out;
}
