// Looking into a running process from a test or bench: its RSS and child processes from /proc,
// and a full garbage collection forced through its inspector, so memory is compared on what a
// process keeps rather than on when V8 last collected.
import { readdir, readFile } from 'node:fs/promises';
import WebSocket from 'ws';
import { startAgentProcess, type AgentProcess } from './agent-process.js';
import { getFreePort } from './free-port.js';

/** Resident set size of `pid`, MB. */
export async function readRssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]) / 1024;
}

/** Live child processes of `pid` (the agent's inference processes). */
export async function childPids(pid: number): Promise<number[]> {
  const tasks = await readdir(`/proc/${pid}/task`);
  const children = await Promise.all(tasks.map((t) => readFile(`/proc/${pid}/task/${t}/children`, 'utf8').catch(() => '')));
  return children.flatMap((c) => c.split(' ').filter((s) => s.trim() !== '').map(Number));
}

/**
 * A connection to a process's inspector that can force a full garbage collection. Await
 * `close()` before stopping the process: a process exiting with a debugger attached waits for
 * it to disconnect.
 */
export async function connectInspector(port: number): Promise<{ collectGarbage(): Promise<void>; close(): Promise<void> }> {
  const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as { webSocketDebuggerUrl: string }[];
  const socket = new WebSocket(targets[0]!.webSocketDebuggerUrl);
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  let nextId = 1;
  const pending = new Map<number, () => void>();
  socket.on('message', (data) => {
    const reply = JSON.parse(String(data)) as { id?: number };
    if (reply.id !== undefined) pending.get(reply.id)?.();
  });
  return {
    collectGarbage: () =>
      new Promise<void>((resolve) => {
        const id = nextId++;
        pending.set(id, resolve);
        socket.send(JSON.stringify({ id, method: 'HeapProfiler.collectGarbage' }));
      }),
    close: () =>
      new Promise<void>((resolve) => {
        if (socket.readyState === WebSocket.CLOSED) return resolve();
        socket.once('close', () => resolve());
        socket.close();
      }),
  };
}

/** Starts the agent process with its inspector on a free port (NODE_OPTIONS: the inference child does not inherit it). */
export async function startInspectableAgent(input: Parameters<typeof startAgentProcess>[0]): Promise<{ agent: AgentProcess; inspectorPort: number }> {
  const inspectorPort = await getFreePort();
  const saved = process.env['NODE_OPTIONS'];
  process.env['NODE_OPTIONS'] = `${saved ?? ''} --inspect=127.0.0.1:${inspectorPort}`.trim();
  try {
    return { agent: await startAgentProcess(input), inspectorPort };
  } finally {
    if (saved === undefined) delete process.env['NODE_OPTIONS'];
    else process.env['NODE_OPTIONS'] = saved;
  }
}
