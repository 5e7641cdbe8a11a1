import { readdirSync, readFileSync } from 'node:fs';

/** A process as /proc shows it; `startTicks` tells a reused pid apart from the original. */
export interface ProcessInfo {
  pid: number;
  ppid: number;
  /** Start time after boot in clock ticks (/proc/<pid>/stat field 22). */
  startTicks: number;
  command: string;
}

/** Reads /proc/<pid>/stat; undefined when the process is gone (or this is not Linux). */
export function readProcess(pid: number): ProcessInfo | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name is in parentheses and may contain spaces: split after the last ')'.
  const close = stat.lastIndexOf(')');
  const fields = stat.slice(close + 2).split(' ');
  let command = stat.slice(stat.indexOf('(') + 1, close);
  try {
    command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim() || command;
  } catch {
    // Gone meanwhile: keep the short name.
  }
  // fields[0] is the state (field 3), so field n is fields[n - 3].
  return { pid, ppid: Number(fields[1]), startTicks: Number(fields[19]), command };
}

/** Every living descendant of `rootPid` (children, their children, ...), from /proc. */
export function listDescendants(rootPid: number): ProcessInfo[] {
  const all: ProcessInfo[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const info = readProcess(Number(name));
    if (info !== undefined) all.push(info);
  }
  const found: ProcessInfo[] = [];
  const parents = new Set([rootPid]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of all) {
      if (parents.has(p.ppid) && !parents.has(p.pid)) {
        parents.add(p.pid);
        found.push(p);
        grew = true;
      }
    }
  }
  return found;
}

/** True while the very process `info` describes still exists (a reused pid does not count). */
export function isStillRunning(info: ProcessInfo): boolean {
  const now = readProcess(info.pid);
  return now !== undefined && now.startTicks === info.startTicks;
}
