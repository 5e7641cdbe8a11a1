// Human output of each command: aligned tables and field lists of the API's answers.
import type {
  AgentDetailResponse,
  AgentListResponse,
  AgentSummary,
  AnomalyListResponse,
  DeviceDetailResponse,
  DeviceListResponse,
  DeviceSummary,
} from '@outpost/shared';
import type { Style } from './style.js';
import { formatFields, formatTable, type Cell } from './table.js';
import { formatAge, formatTime } from './time.js';

const NONE = '-';
/** Latest values shown per device in a list; the detail shows them all. */
const MAX_LISTED_METRICS = 4;
/** Device-seq holes shown in a device detail. */
const MAX_SHOWN_GAP_RANGES = 10;

function statusCell(summary: Pick<AgentSummary, 'status' | 'reasons'>, style: Style): Cell {
  const text = summary.reasons.length === 0 ? summary.status : `${summary.status} (${summary.reasons.join(', ')})`;
  const color = { online: style.green, degraded: style.yellow, offline: style.red, unknown: style.dim }[summary.status];
  return { text, style: color };
}

/** `k=v,k=v`, or `-` for none. */
export function formatLabels(values: Readonly<Record<string, string>>): string {
  const entries = Object.entries(values);
  return entries.length === 0 ? NONE : entries.map(([k, v]) => `${k}=${v}`).join(',');
}

/** `512 B`, `1.5 KiB`, `12.0 MiB`, ... */
export function formatBytes(count: number): string {
  if (count < 1024) return `${count} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = count / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

const rate = (perS: number | undefined): string => (perS === undefined ? NONE : perS.toFixed(1));
const header = (style: Style) => ({ header: style.bold });

function metrics(values: Readonly<Record<string, number>>, max = Number.POSITIVE_INFINITY): string {
  const entries = Object.entries(values);
  const shown = entries.slice(0, max).map(([k, v]) => `${k}=${v}`);
  if (entries.length > max) shown.push(`+${entries.length - max} more`);
  return shown.join(' ');
}

/** `agents ls`: one row per agent. */
export function formatAgentList(body: AgentListResponse, nowMs: number, style: Style): string {
  if (body.agents.length === 0) return 'No agents yet.\n';
  return formatTable(
    [
      { header: 'AGENT' },
      { header: 'STATUS' },
      { header: 'LAST SEEN' },
      { header: 'VERSION' },
      { header: 'MODEL' },
      { header: 'BUFFERED', align: 'right' },
      { header: 'IN/S', align: 'right' },
      { header: 'LABELS' },
    ],
    body.agents.map((a) => [
      a.agentId,
      statusCell(a, style),
      a.lastSeenMs === null ? NONE : formatAge(a.lastSeenMs, nowMs),
      a.versions?.agent ?? NONE,
      a.versions?.model ?? a.inference?.model ?? NONE,
      a.buffer === null ? NONE : String(Object.values(a.buffer.records).reduce((s, n) => s + n, 0)),
      rate(a.ingest?.acceptedPerS),
      formatLabels(a.labels),
    ]),
    header(style),
  );
}

/** `agents show`: the agent's fields, then its accounting per epoch and lane. */
export function formatAgentDetail(body: AgentDetailResponse, nowMs: number, style: Style): string {
  const seen = (ms: number | null) => (ms === null ? NONE : `${formatTime(ms)} (${formatAge(ms, nowMs)})`);
  const status = statusCell(body, style) as { text: string; style: (t: string) => string };
  const fields: [string, string][] = [
    ['Agent', body.agentId],
    ['Status', status.style(status.text)],
    ['Labels', formatLabels(body.labels)],
    ['Epoch', body.epoch ?? NONE],
    ['Versions', body.versions === null ? NONE : Object.entries(body.versions).map(([k, v]) => `${k} ${v}`).join(', ')],
    ['First seen', seen(body.firstSeenMs)],
    ['Last seen', seen(body.lastSeenMs)],
  ];
  if (body.buffer !== null) {
    const b = body.buffer;
    const records = Object.values(b.records).reduce((s, n) => s + n, 0);
    const lanes = Object.entries(b.records).map(([lane, n]) => `${lane} ${n}`).join(', ');
    const oldest = b.oldestRecordAgeMs === undefined ? '' : `, oldest ${formatAge(nowMs - b.oldestRecordAgeMs, nowMs).replace(' ago', '')}`;
    fields.push(['Buffer', `${records} records (${lanes}), ${formatBytes(b.bytes)} of ${formatBytes(b.maxBytes)}${oldest}`]);
  }
  if (body.ingest !== null) {
    const i = body.ingest;
    fields.push(['Ingest', `accepted ${i.accepted}, rejected ${i.rejected}, ${i.devicesConnected} devices connected${i.acceptedPerS === undefined ? '' : `, ${rate(i.acceptedPerS)}/s`}`]);
  }
  if (body.inference !== null) fields.push(['Inference', `${body.inference.up ? 'up' : 'down'}${body.inference.model === undefined ? '' : `, model ${body.inference.model}`}`]);
  const t = body.totals;
  fields.push(['Totals', `received ${t.received}, duplicates ${t.duplicates}, gaps ${t.gaps} (explained by eviction ${t.explainedByEviction}, unexplained ${t.unexplainedGaps}), evicted ${t.evicted}`]);
  let out = formatFields(fields, header(style));
  if (body.accounting.length > 0) {
    out += '\n';
    out += formatTable(
      [
        { header: 'EPOCH' },
        { header: 'LANE' },
        { header: 'RECEIVED', align: 'right' },
        { header: 'DUPLICATES', align: 'right' },
        { header: 'MAX SEQ', align: 'right' },
        { header: 'GAPS', align: 'right' },
        { header: 'UNEXPLAINED', align: 'right' },
        { header: 'EVICTED', align: 'right' },
        { header: 'DEVICES', align: 'right' },
      ],
      body.accounting.map((l) => [
        l.epoch,
        l.lane,
        String(l.received),
        String(l.duplicates),
        String(l.maxSeq),
        String(l.gaps),
        l.unexplainedGaps > 0 ? { text: String(l.unexplainedGaps), style: style.red } : String(l.unexplainedGaps),
        String(l.evicted.records),
        String(l.devices),
      ]),
      header(style),
    );
  }
  return out;
}

/** Share of a device's telemetry that arrived: received telemetry against device-seq holes. */
function completeness(d: DeviceSummary): string {
  const telemetry = d.kinds['telemetry'] ?? 0;
  if (telemetry + d.gaps === 0) return NONE;
  return `${((100 * telemetry) / (telemetry + d.gaps)).toFixed(telemetry + d.gaps >= 1000 ? 2 : 1)}%`;
}

/** `devices ls`: one row per device, with completeness (telemetry received against device-seq gaps). */
export function formatDeviceList(body: DeviceListResponse, nowMs: number, style: Style): string {
  if (body.devices.length === 0) return `Agent ${body.agentId} has sent nothing of any device yet.\n`;
  return formatTable(
    [
      { header: 'DEVICE' },
      { header: 'RECEIVED', align: 'right' },
      { header: 'DUPLICATES', align: 'right' },
      { header: 'GAPS', align: 'right' },
      { header: 'EVICTED', align: 'right' },
      { header: 'COMPLETE', align: 'right' },
      { header: 'LAST READING' },
      { header: 'LATEST' },
    ],
    body.devices.map((d) => [
      d.deviceId,
      String(d.received),
      String(d.duplicates),
      d.gaps > 0 ? { text: String(d.gaps), style: style.yellow } : String(d.gaps),
      String(d.evicted),
      completeness(d),
      d.latest === null ? NONE : formatAge(d.latest.receivedAtMs, nowMs),
      d.latest === null ? NONE : metrics(d.latest.metrics, MAX_LISTED_METRICS),
    ]),
    header(style),
  );
}

/** `devices show`: the device's fields, then its counts per epoch and lane. */
export function formatDeviceDetail(body: DeviceDetailResponse, nowMs: number, style: Style): string {
  const kinds = Object.entries(body.kinds);
  const gaps = body.deviceSeq.gapRanges.slice(0, MAX_SHOWN_GAP_RANGES).map(([a, b]) => (a === b ? String(a) : `${a}-${b}`));
  if (body.deviceSeq.gapRanges.length > MAX_SHOWN_GAP_RANGES) gaps.push('...');
  const fields: [string, string][] = [
    ['Device', `${body.deviceId} (agent ${body.agentId})`],
    ['Received', `${body.received}${kinds.length === 0 ? '' : ` (${kinds.map(([k, n]) => `${k} ${n}`).join(', ')})`}`],
    ['Duplicates', String(body.duplicates)],
    ['Gaps', `${body.gaps}${gaps.length === 0 ? '' : ` (device seqs ${gaps.join(', ')})`}`],
    ['Evicted', String(body.evicted)],
    ['Complete', completeness(body)],
    ['Device seqs', body.deviceSeq.min === null ? NONE : `${body.deviceSeq.min} to ${body.deviceSeq.max}`],
    ['Latest', body.latest === null ? NONE : `${metrics(body.latest.metrics)} at ${formatTime(body.latest.ts)} (received ${formatAge(body.latest.receivedAtMs, nowMs)})`],
  ];
  let out = formatFields(fields, header(style));
  if (body.byEpochLane.length > 0) {
    out += '\n';
    out += formatTable(
      [{ header: 'EPOCH' }, { header: 'LANE' }, { header: 'RECEIVED', align: 'right' }, { header: 'DUPLICATES', align: 'right' }, { header: 'EVICTED', align: 'right' }],
      body.byEpochLane.map((e) => [e.epoch, e.lane, String(e.received), String(e.duplicates), String(e.evicted)]),
      header(style),
    );
  }
  return out;
}

/** `anomalies ls`: one row per anomaly, newest first as the API answers. */
export function formatAnomalyList(body: AnomalyListResponse, style: Style): string {
  if (body.anomalies.length === 0) return 'No anomalies.\n';
  return formatTable(
    [{ header: 'TIME' }, { header: 'AGENT' }, { header: 'DEVICE' }, { header: 'SCORE', align: 'right' }, { header: 'THRESHOLD', align: 'right' }, { header: 'MODEL' }],
    body.anomalies.map((a) => [
      formatTime(a.ts),
      a.agentId,
      a.deviceId,
      { text: a.score.toFixed(3), style: style.red },
      a.threshold === undefined ? NONE : a.threshold.toFixed(3),
      `${a.model.name}@${a.model.version}`,
    ]),
    header(style),
  );
}
