// A flame graph of a V8 .cpuprofile as a self-contained SVG, for docs/PERFORMANCE.md: each
// frame's width is its total time (itself and its callees), callers below callees, siblings
// merged by function and file, our code in blue, dependencies in orange, Node and V8 in grey.
// `node tests/dist/bench/flame-graph.js <in.cpuprofile> <out.svg> [title]`.
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

interface Frame {
  name: string;
  url: string;
  selfUs: number;
  totalUs: number;
  children: Map<string, Frame>;
}

const WIDTH = 1200;
const ROW = 17;
/** Frames narrower than this many pixels are left out (their time stays in their parent's width). */
const MIN_PX = 0.6;
/** Idle and GC are shown, but not as callers of anything. */
const ROOT_NAMES = new Set(['(root)']);

const escapeXml = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function shortUrl(url: string): string {
  return url.replace(/^file:\/\/.*?\/node_modules\//, '').replace(/^file:\/\/.*?\/((?:agent|control-plane|shared|tests)\/dist\/)/, '$1');
}

function colour(url: string, name: string): string {
  if (url === '') return name === '(garbage collector)' ? '#c8a2c8' : '#bbbbbb';
  if (url.startsWith('node:')) return '#cfcfcf';
  if (url.includes('/node_modules/')) return '#f0a35e';
  return '#6fa8dc';
}

/** Builds the merged call tree of a profile. */
export function buildFrames(profile: Profile): Frame {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const parentOf = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parentOf.set(c, n.id);
  const rootNode = profile.nodes.find((n) => !parentOf.has(n.id))!;
  const toFrame = (node: ProfileNode, into: Frame): void => {
    for (const childId of node.children ?? []) {
      const child = byId.get(childId)!;
      const { functionName, url, lineNumber } = child.callFrame;
      const name = `${functionName || '(anonymous)'}${url === '' ? '' : ` ${shortUrl(url)}:${lineNumber + 1}`}`;
      let frame = into.children.get(name);
      if (frame === undefined) {
        frame = { name, url, selfUs: 0, totalUs: 0, children: new Map() };
        into.children.set(name, frame);
      }
      frame.selfUs += selfUs.get(child.id) ?? 0;
      toFrame(child, frame);
    }
  };
  const root: Frame = { name: 'all', url: '', selfUs: selfUs.get(rootNode.id) ?? 0, totalUs: 0, children: new Map() };
  toFrame(rootNode, root);
  const total = (f: Frame): number => (f.totalUs = f.selfUs + [...f.children.values()].reduce((sum, c) => sum + total(c), 0));
  total(root);
  return root;
}

/** The SVG: the root at the bottom, callees above their callers. */
export function renderFlameGraph(root: Frame, title: string): string {
  const rects: string[] = [];
  let maxDepth = 0;
  const scale = WIDTH / Math.max(1, root.totalUs);
  const place = (f: Frame, x: number, depth: number): void => {
    const w = f.totalUs * scale;
    if (w < MIN_PX) return;
    maxDepth = Math.max(maxDepth, depth);
    rects.push(`${depth}|${x.toFixed(2)}|${w.toFixed(2)}|${f.name}|${colour(f.url, f.name)}|${((f.totalUs / root.totalUs) * 100).toFixed(1)}`);
    let cx = x;
    for (const c of [...f.children.values()].sort((a, b) => a.name.localeCompare(b.name))) {
      if (ROOT_NAMES.has(c.name)) continue;
      place(c, cx, depth + 1);
      cx += c.totalUs * scale;
    }
  };
  place(root, 0, 0);
  const top = 40;
  const height = top + (maxDepth + 1) * ROW + 10;
  const body = rects.map((r) => {
    const [depth, x, w, name, fill, pct] = r.split('|') as [string, string, string, string, string, string];
    const y = top + (maxDepth - Number(depth)) * ROW;
    const label = Number(w) > 40 ? `<text x="${(Number(x) + 3).toFixed(1)}" y="${y + 12}">${escapeXml(name.slice(0, Math.floor(Number(w) / 6.5)))}</text>` : '';
    return `<g><title>${escapeXml(`${name} (${pct}%)`)}</title><rect x="${x}" y="${y}" width="${w}" height="${ROW - 1}" fill="${fill}" rx="1"/>${label}</g>`;
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="monospace" font-size="11">`,
    '<style>.t{font-family:system-ui,sans-serif;font-size:15px;font-weight:600}.s{font-family:system-ui,sans-serif;font-size:11px;fill:#555}</style>',
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="6" y="18" class="t">${escapeXml(title)}</text>`,
    `<text x="6" y="33" class="s">width = CPU time incl. callees; blue: Outpost, orange: dependencies, grey: Node/V8, lilac: GC; hover for shares</text>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  const [input, output, title] = process.argv.slice(2);
  if (input === undefined || output === undefined) throw new Error('usage: flame-graph <in.cpuprofile> <out.svg> [title]');
  const profile = JSON.parse(await readFile(input, 'utf8')) as Profile;
  await writeFile(output, renderFlameGraph(buildFrames(profile), title ?? input));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
