// The inference process's proportional set size as it would be on a gateway, where the only
// other process mapping its pages is the agent. /proc's own Pss splits a shared page among every
// process that maps it: on the bench machine that includes the load generator's and the bench's
// node processes (and anyone else's), so the figure drops with every node process running, a
// figure that flatters us. Here each resident page of the child counts whole, or half when the
// agent maps the very same physical page (node's code, for instance): /proc/<pid>/pagemap gives
// the page frame numbers, which Linux shows only to a process with CAP_SYS_ADMIN (root here).
import { open, readFile } from 'node:fs/promises';

const PAGE_BYTES = 4096;
/** Mappings larger than this (address-space reservations) are read in slices of this size. */
const SLICE_PAGES = 1 << 16;

/** Resident mappings of `pid`: [start page, page count] from /proc/<pid>/smaps, those with Rss > 0. */
async function residentRanges(pid: number): Promise<[number, number][]> {
  const smaps = await readFile(`/proc/${pid}/smaps`, 'utf8');
  const ranges: [number, number][] = [];
  let current: [number, number] | undefined;
  for (const line of smaps.split('\n')) {
    const header = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
    if (header !== null) {
      const start = Number.parseInt(header[1]!, 16) / PAGE_BYTES;
      current = [start, Number.parseInt(header[2]!, 16) / PAGE_BYTES - start];
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss !== null && current !== undefined && Number(rss[1]) > 0) ranges.push(current);
  }
  return ranges;
}

/** Page frame numbers of every present page of `pid`; undefined when the kernel hides them (not root). */
async function presentFrames(pid: number): Promise<Set<number> | undefined> {
  const frames = new Set<number>();
  const ranges = await residentRanges(pid);
  const file = await open(`/proc/${pid}/pagemap`, 'r');
  try {
    for (const [start, pages] of ranges) {
      for (let at = 0; at < pages; at += SLICE_PAGES) {
        const n = Math.min(SLICE_PAGES, pages - at);
        const buffer = Buffer.alloc(n * 8);
        const { bytesRead } = await file.read(buffer, 0, buffer.length, (start + at) * 8);
        for (let k = 0; k + 8 <= bytesRead; k += 8) {
          const high = buffer.readUInt32LE(k + 4);
          if (high >>> 31 === 0) continue; // bit 63: present
          // Bits 0-54: the page frame number (0 when hidden from this process).
          const pfn = (high & 0x7fffff) * 2 ** 32 + buffer.readUInt32LE(k);
          if (pfn === 0) return undefined;
          frames.add(pfn);
        }
      }
    }
  } finally {
    await file.close();
  }
  return frames;
}

/**
 * MB the child `childPid` accounts for when only `agentPid` shares its pages: its resident pages,
 * each counted whole, or half when the agent maps the same physical page. NaN when page frame
 * numbers are not readable (the bench not running as root).
 */
export async function gatewayPssMb(childPid: number, agentPid: number): Promise<number> {
  const [child, agent] = await Promise.all([presentFrames(childPid), presentFrames(agentPid)]);
  if (child === undefined || agent === undefined) return Number.NaN;
  let pages = 0;
  for (const pfn of child) pages += agent.has(pfn) ? 0.5 : 1;
  return (pages * PAGE_BYTES) / 2 ** 20;
}
