// Memory and CPU time of a process, read from Linux /proc.
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';

export interface MemoryStats {
  /** Resident set size now, MB (VmRSS). */
  rssMb: number;
  /** Peak resident set size so far, MB (VmHWM). */
  peakRssMb: number;
}

/** VmRSS and VmHWM of `pid` from /proc/<pid>/status, in MB (2^20 bytes). */
export async function readMemory(pid: number): Promise<MemoryStats> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    if (match === null) throw new Error(`/proc/${pid}/status has no ${field}`);
    return Number(match[1]);
  };
  return { rssMb: kb('VmRSS') / 1024, peakRssMb: kb('VmHWM') / 1024 };
}

let clockTicksPerS: number | undefined;

function clockTicks(): number {
  if (clockTicksPerS === undefined) {
    try {
      clockTicksPerS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicksPerS = 100;
    }
  }
  return clockTicksPerS;
}

/** Fields 3.. of /proc/<pid>/stat; the command name (field 2) may hold spaces and parentheses. */
async function readStatFields(pid: number | 'self'): Promise<string[]> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** User + system CPU seconds `pid` has used so far (/proc/<pid>/stat fields 14 and 15). */
export async function readCpuSeconds(pid: number): Promise<number> {
  const fields = await readStatFields(pid);
  // fields[0] is field 3 (state), so utime (14) is fields[11] and stime (15) fields[12].
  return (Number(fields[11]) + Number(fields[12])) / clockTicks();
}

/** What the whole machine and this process tree had used at one moment. */
export interface CpuSnapshot {
  atMs: number;
  /** Busy CPU seconds of all cores (/proc/stat: user, nice, system, irq, softirq, steal). */
  machineBusyS: number;
  /** This process plus its exited, reaped children (the agents), CPU seconds. */
  ownTreeS: number;
}

export async function cpuSnapshot(): Promise<CpuSnapshot> {
  const [stat, fields] = await Promise.all([readFile('/proc/stat', 'utf8'), readStatFields('self')]);
  const cpu = (stat.split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = cpu;
  // utime, stime, cutime, cstime: fields 14..17.
  const own = fields.slice(11, 15).reduce((sum, f) => sum + Number(f), 0);
  return { atMs: performance.now(), machineBusyS: (user + nice + system + irq + softirq + steal) / clockTicks(), ownTreeS: own / clockTicks() };
}

/**
 * Cores used by everything else between two snapshots (other processes, hypervisor steal):
 * a bench sharing the machine with other work reports lower figures than a quiet one.
 * Exact only when every child started in between has exited before `to`.
 */
export function foreignCores(from: CpuSnapshot, to: CpuSnapshot): number {
  const wallS = (to.atMs - from.atMs) / 1000;
  return Math.max(0, (to.machineBusyS - from.machineBusyS - (to.ownTreeS - from.ownTreeS)) / wallS);
}

/** CPU seconds of this process (user + system). */
export function ownCpuSeconds(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}
