// Summarises a V8 .cpuprofile: self time by function and by package, for the bench report.
import { readFile } from 'node:fs/promises';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileEntry {
  name: string;
  selfMs: number;
  /** Share of all sampled time, 0..1. */
  share: number;
}

export interface ProfileSummary {
  totalMs: number;
  functions: ProfileEntry[];
  packages: ProfileEntry[];
}

/** Where a function lives: an npm package, the agent or shared package, Node itself, or V8. */
function packageOf(url: string, functionName: string): string {
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)';
  if (url.startsWith('node:')) return 'node (core)';
  const module = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (module !== null) return module[1] as string;
  const workspace = /\/(agent|control-plane|shared|tests)\/dist\//.exec(url);
  if (workspace !== null) return `@outpost/${workspace[1]}`;
  return url;
}

function shortUrl(url: string): string {
  return url.replace(/^file:\/\/.*?\/node_modules\//, '').replace(/^file:\/\/.*?\/((?:agent|control-plane|shared|tests)\/dist\/)/, '$1');
}

/** Reads a .cpuprofile and returns the `top` functions and packages by self time. */
export async function summarizeCpuProfile(file: string, top = 20): Promise<ProfileSummary> {
  const profile = JSON.parse(await readFile(file, 'utf8')) as Profile;
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const byFunction = new Map<string, number>();
  const byPackage = new Map<string, number>();
  let totalUs = 0;
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0;
    const node = nodes.get(id);
    if (node === undefined) return;
    const { functionName, url, lineNumber } = node.callFrame;
    totalUs += us;
    const name = url === '' ? functionName || '(anonymous)' : `${functionName || '(anonymous)'} ${shortUrl(url)}:${lineNumber + 1}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + us);
    const pkg = packageOf(url, functionName);
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + us);
  });
  const rank = (m: Map<string, number>): ProfileEntry[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, selfMs: us / 1000, share: totalUs === 0 ? 0 : us / totalUs }));
  return { totalMs: totalUs / 1000, functions: rank(byFunction), packages: rank(byPackage) };
}
