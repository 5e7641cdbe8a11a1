import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { AgentConfigSchema, parseConfig, type AgentConfig, type AgentConfigInput } from '@outpost/shared';
import { startAgent, type Agent } from '@outpost/agent';
import { startServiceProcess, type ServiceProcess } from './service-process.js';

/** The built agent entry point; child agents run the JavaScript that `npm run build` wrote. */
export const AGENT_MAIN = fileURLToPath(new URL('../../../agent/dist/main.js', import.meta.url));

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

export interface AgentProcess extends ServiceProcess {
  readonly mqttPort: number | undefined;
  readonly tlsPort: number | undefined;
  readonly httpPort: number;
  readonly epoch: string;
}

/**
 * Runs `outpost-agent --config <file>` as a child process (the built JavaScript) and waits
 * for its ready line. The config is written next to the data dir as JSON.
 */
export async function startAgentProcess(input: AgentConfigInput, options: { timeoutMs?: number } = {}): Promise<AgentProcess> {
  const service = await startServiceProcess({
    main: AGENT_MAIN,
    config: input,
    configFile: join(input.dataDir, '..', `${input.agentId}-${Date.now()}-${process.hrtime.bigint()}.json`),
    readyEvent: 'agent-ready',
    timeoutMs: options.timeoutMs,
  });
  const r = service.ready;
  return Object.assign(service, {
    mqttPort: r['mqttPort'] as number | undefined,
    tlsPort: r['tlsPort'] as number | undefined,
    httpPort: r['httpPort'] as number,
    epoch: r['epoch'] as string,
  });
}
