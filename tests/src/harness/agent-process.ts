import type { ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { AgentConfigSchema, ErrorCode, OutpostError, parseConfig, type AgentConfig, type AgentConfigInput } from '@outpost/shared';
import { startAgent, type Agent } from '@outpost/agent';
import { spawnOwned } from './wait.js';

/** The built agent entry point; child agents run the JavaScript that `npm run build` wrote. */
export const AGENT_MAIN = fileURLToPath(new URL('../../../agent/dist/main.js', import.meta.url));

/** How long a child agent may take to print its ready line. */
export const DEFAULT_AGENT_START_TIMEOUT_MS = 20_000;

/** A test config: ephemeral ports, anonymous devices, quiet logs; override what a test needs. */
export function testAgentConfig(dataDir: string, overrides: Partial<AgentConfigInput> = {}): AgentConfigInput {
  return {
    agentId: 'test-agent',
    dataDir,
    broker: { mode: 'embedded', host: '127.0.0.1', port: 0, allowAnonymous: true },
    http: { host: '127.0.0.1', port: 0 },
    log: { level: 'warn' },
    ...overrides,
  };
}

/** Starts an agent inside the test process. */
export async function startInProcessAgent(input: AgentConfigInput): Promise<Agent> {
  const config: AgentConfig = parseConfig(AgentConfigSchema, input, 'test agent config');
  return startAgent(config);
}

export interface AgentReady {
  mqttPort: number | undefined;
  tlsPort: number | undefined;
  httpPort: number;
  epoch: string;
  pid: number;
}

export interface AgentProcess extends AgentReady {
  readonly child: ChildProcess;
  /** Every JSON log line the agent printed so far. */
  readonly logs: Record<string, unknown>[];
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL: the crash a test wants; resolves once the process is gone. */
  kill9(): Promise<void>;
  /** SIGTERM and wait for a clean exit; returns the exit code. */
  stop(): Promise<number | null>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Runs `outpost-agent --config <file>` as a child process (the built JavaScript) and waits
 * for its ready line. The config is written next to the data dir as JSON.
 */
export async function startAgentProcess(input: AgentConfigInput, options: { timeoutMs?: number } = {}): Promise<AgentProcess> {
  const configFile = join(input.dataDir, '..', `${input.agentId}-${Date.now()}-${process.hrtime.bigint()}.json`);
  await writeFile(configFile, JSON.stringify(input, null, 2));
  // Owned: the kernel kills the agent if the test worker dies, so a failed test leaks no agent.
  const { child } = await spawnOwned(process.execPath, [AGENT_MAIN, '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  const { stdout, stderr: stderrStream } = child;
  if (stdout === null || stderrStream === null) throw new Error('agent child has no stdout/stderr pipes');
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  stderrStream.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve({ code: child.exitCode, signal: child.signalCode });
    else child.once('exit', (code, signal) => resolve({ code, signal }));
  });

  const ready = await new Promise<AgentReady>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new OutpostError(ErrorCode.HARNESS_START_FAILED, `agent did not print its ready line within ${options.timeoutMs ?? DEFAULT_AGENT_START_TIMEOUT_MS} ms; stderr: ${stderr.slice(-2000)}`));
    }, options.timeoutMs ?? DEFAULT_AGENT_START_TIMEOUT_MS);
    createInterface({ input: stdout }).on('line', (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      logs.push(entry);
      if (entry['event'] === 'agent-ready') {
        clearTimeout(timer);
        resolve({
          mqttPort: entry['mqttPort'] as number | undefined,
          tlsPort: entry['tlsPort'] as number | undefined,
          httpPort: entry['httpPort'] as number,
          epoch: entry['epoch'] as string,
          pid: entry['pid'] as number,
        });
      }
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new OutpostError(ErrorCode.HARNESS_START_FAILED, `agent exited before ready (code ${code}, signal ${signal}); stderr: ${stderr.slice(-2000)}`));
    });
  });

  const kill9 = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  return {
    ...ready,
    child,
    logs,
    exited,
    kill9,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return (await exited).code;
    },
    [Symbol.asyncDispose]: kill9,
  };
}
