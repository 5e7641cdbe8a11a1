// A self-contained SVG bar chart of the bench's throughput figures, so docs/PERFORMANCE.md
// shows the comparison at a glance without a plotting dependency. Pure: figures in, SVG out.

export interface ChartBar {
  label: string;
  value: number;
  /** Outpost's own bars are drawn in the accent colour, peers and limits in grey. */
  ours: boolean;
}

export interface ChartGroup {
  title: string;
  unit: string;
  bars: readonly ChartBar[];
  /** A target line across the group, when the issue set one. */
  target?: number;
}

const WIDTH = 760;
const LABEL_WIDTH = 260;
const BAR_HEIGHT = 22;
const BAR_GAP = 8;
const GROUP_TITLE_HEIGHT = 30;
const GROUP_GAP = 18;
const VALUE_WIDTH = 110;
const OURS = '#2f6fde';
const PEER = '#9aa3ad';
const TARGET = '#d9534f';

const escapeXml = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const formatValue = (value: number): string => value.toLocaleString('en-US', { maximumFractionDigits: value >= 100 ? 0 : 1 });

/** Renders groups of horizontal bars, each group on its own scale, as one SVG document. */
export function renderBarChart(title: string, subtitle: string, groups: readonly ChartGroup[]): string {
  const parts: string[] = [];
  let y = 56;
  const plotWidth = WIDTH - LABEL_WIDTH - VALUE_WIDTH;
  for (const group of groups) {
    const max = Math.max(...group.bars.map((b) => b.value), group.target ?? 0, 1);
    parts.push(`<text x="16" y="${y + 18}" class="group">${escapeXml(group.title)} (${escapeXml(group.unit)})</text>`);
    y += GROUP_TITLE_HEIGHT;
    const top = y;
    for (const bar of group.bars) {
      const width = Math.max(1, (bar.value / max) * plotWidth);
      parts.push(`<text x="${LABEL_WIDTH - 10}" y="${y + BAR_HEIGHT * 0.7}" class="label">${escapeXml(bar.label)}</text>`);
      parts.push(`<rect x="${LABEL_WIDTH}" y="${y}" width="${width.toFixed(1)}" height="${BAR_HEIGHT}" rx="3" fill="${bar.ours ? OURS : PEER}"/>`);
      parts.push(`<text x="${(LABEL_WIDTH + width + 6).toFixed(1)}" y="${y + BAR_HEIGHT * 0.7}" class="value">${formatValue(bar.value)}</text>`);
      y += BAR_HEIGHT + BAR_GAP;
    }
    if (group.target !== undefined) {
      const x = LABEL_WIDTH + (group.target / max) * plotWidth;
      parts.push(`<line x1="${x.toFixed(1)}" y1="${top - 4}" x2="${x.toFixed(1)}" y2="${y - BAR_GAP + 4}" stroke="${TARGET}" stroke-dasharray="4 3" stroke-width="1.5"/>`);
      parts.push(`<text x="${(x + 4).toFixed(1)}" y="${top - 6}" class="target">target ${formatValue(group.target)}</text>`);
    }
    y += GROUP_GAP;
  }
  const height = y + 10;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="system-ui, sans-serif">`,
    '<style>.title{font-size:18px;font-weight:600}.subtitle{font-size:12px;fill:#555}.group{font-size:14px;font-weight:600}.label{font-size:12px;text-anchor:end}.value{font-size:12px}.target{font-size:11px;fill:#d9534f}</style>',
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="16" y="26" class="title">${escapeXml(title)}</text>`,
    `<text x="16" y="44" class="subtitle">${escapeXml(subtitle)}</text>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}
