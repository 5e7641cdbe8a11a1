// `outpostctl <noun> <verb>`: the operator CLI over the control plane's HTTP API. Everything
// the process gives (argv, environment, stdin, whether stdout is a terminal and its size,
// Ctrl-C) comes in through CliIo from main.ts, so this file runs the same in a test as in a
// shell. The model and rollout commands live in model-commands.ts and rollout-commands.ts.
import { Command, CommanderError, Option } from 'commander';
import {
  AgentDetailResponseSchema,
  AgentIdSchema,
  AgentListResponseSchema,
  AnomalyListResponseSchema,
  DEFAULT_ANOMALIES_LIMIT,
  DeviceDetailResponseSchema,
  DeviceIdSchema,
  DeviceListResponseSchema,
  MAX_ANOMALIES_LIMIT,
} from '@outpost/shared';
import { generateOperatorToken, hashOperatorToken } from '../api/auth.js';
import { DEFAULT_CLI_TIMEOUT_MS } from './api-client.js';
import { registerAgentDiagCommands } from './agent-diag-commands.js';
import { registerAuditCommands } from './audit-commands.js';
import { checkId, createCommandKit, DEFAULT_CONTROL_PLANE_URL, expectBody, parsePositiveInt, usage, type CliIo, type GlobalOptions } from './command-kit.js';
import { CliError, CliExitCode, EXIT_CODES_HELP } from './exit-codes.js';
import { formatAgentDetail, formatAgentList, formatAnomalyList, formatDeviceDetail, formatDeviceList } from './format.js';
import { registerEnrollmentCommands } from './enrollment-commands.js';
import { registerModelCommands } from './model-commands.js';
import { registerRolloutCommands } from './rollout-commands.js';
import { formatFields } from './table.js';
import { parseSince } from './time.js';

export { DEFAULT_CONTROL_PLANE_URL, type CliIo } from './command-kit.js';

/**
 * Runs one command line (`argv` without node and the script) and returns its exit code; output
 * and errors go to `io`. Never throws.
 */
export async function runCli(argv: readonly string[], io: CliIo): Promise<CliExitCode> {
  const kit = createCommandKit(io);
  const { out, printJson, context } = kit;

  const program = new Command()
    .name('outpostctl')
    .description('Operate an Outpost fleet through the control plane\'s HTTP API.')
    .addOption(new Option('--url <url>', `control plane URL (env OUTPOST_URL; default ${DEFAULT_CONTROL_PLANE_URL})`))
    .addOption(new Option('--token <token>', 'API bearer token: a viewer token reads, changes need an operator token (env OUTPOST_TOKEN)'))
    .option('--json', 'print the API answer as JSON')
    .option('--timeout <ms>', `give up on the control plane after this long (default ${DEFAULT_CLI_TIMEOUT_MS})`)
    .exitOverride()
    .configureOutput({ writeOut: out, writeErr: (text) => io.stderr.write(text) })
    .showHelpAfterError('(outpostctl --help shows the commands)')
    .addHelpText(
      'after',
      `\nEnvironment:\n  OUTPOST_URL    control plane URL, as --url\n  OUTPOST_TOKEN  API token, as --token\n  NO_COLOR       no colour even on a terminal\n\n${EXIT_CODES_HELP}\n`,
    );

  const agents = program.command('agents').description('agents of the fleet');
  agents
    .command('ls')
    .description('list the agents with their status')
    .action(async (_opts, command: Command) => {
      const c = context(command);
      const body = await c.api.get('/api/agents');
      if (c.json) return printJson(body);
      out(formatAgentList(expectBody(AgentListResponseSchema, body, 'agents ls'), io.now(), c.style));
    });
  agents
    .command('show')
    .description('one agent: status, buffer, ingest, accounting per epoch and lane')
    .argument('<agentId>')
    .action(async (agentId: string, _opts, command: Command) => {
      const id = checkId(AgentIdSchema, 'agent id', agentId);
      const c = context(command);
      const body = await c.api.get(`/api/agents/${encodeURIComponent(id)}`);
      if (c.json) return printJson(body);
      out(formatAgentDetail(expectBody(AgentDetailResponseSchema, body, 'agents show'), io.now(), c.style));
    });

  registerEnrollmentCommands(agents, kit);
  registerAgentDiagCommands(agents, kit);

  const devices = program.command('devices').description('devices of an agent');
  devices
    .command('ls')
    .description("list an agent's devices: received, duplicates, gaps, latest values")
    .argument('<agentId>')
    .action(async (agentId: string, _opts, command: Command) => {
      const id = checkId(AgentIdSchema, 'agent id', agentId);
      const c = context(command);
      const body = await c.api.get(`/api/agents/${encodeURIComponent(id)}/devices`);
      if (c.json) return printJson(body);
      out(formatDeviceList(expectBody(DeviceListResponseSchema, body, 'devices ls'), io.now(), c.style));
    });
  devices
    .command('show')
    .description('one device: counts by kind, device-seq gaps, per epoch and lane')
    .argument('<agentId>')
    .argument('<deviceId>')
    .action(async (agentId: string, deviceId: string, _opts, command: Command) => {
      const agent = checkId(AgentIdSchema, 'agent id', agentId);
      const device = checkId(DeviceIdSchema, 'device id', deviceId);
      const c = context(command);
      const body = await c.api.get(`/api/agents/${encodeURIComponent(agent)}/devices/${encodeURIComponent(device)}`);
      if (c.json) return printJson(body);
      out(formatDeviceDetail(expectBody(DeviceDetailResponseSchema, body, 'devices show'), io.now(), c.style));
    });

  const anomalies = program.command('anomalies').description('anomalies the agents reported');
  anomalies
    .command('ls')
    .description('list anomalies, newest first')
    .option('--since <when>', 'a duration back from now (90s, 15m, 1h, 2d), epoch ms or an ISO 8601 time', '1h')
    .option('--agent <agentId>', 'only this agent')
    .option('--device <deviceId>', 'only this device')
    .option('--limit <n>', `at most this many (1 to ${MAX_ANOMALIES_LIMIT})`, String(DEFAULT_ANOMALIES_LIMIT))
    .action(async (opts: { since: string; agent?: string; device?: string; limit: string }, command: Command) => {
      const since = parseSince(opts.since, io.now());
      if (since === undefined) throw usage(`--since: ${JSON.stringify(opts.since)} is not a duration (1h), epoch ms or an ISO 8601 time`);
      const query = new URLSearchParams({ since: String(since), limit: String(parsePositiveInt('--limit', opts.limit, MAX_ANOMALIES_LIMIT)) });
      if (opts.agent !== undefined) query.set('agentId', checkId(AgentIdSchema, 'agent id', opts.agent));
      if (opts.device !== undefined) query.set('deviceId', checkId(DeviceIdSchema, 'device id', opts.device));
      const c = context(command);
      const body = await c.api.get(`/api/anomalies?${query.toString()}`);
      if (c.json) return printJson(body);
      out(formatAnomalyList(expectBody(AnomalyListResponseSchema, body, 'anomalies ls'), c.style));
    });

  registerModelCommands(program, kit);
  registerRolloutCommands(program, kit);
  registerAuditCommands(program, kit);

  const token = program.command('token').description('operator tokens for the control plane config (http.auth.tokens)');
  token
    .command('hash')
    .description('read a token on stdin, print its sha256 for http.auth.tokens[].sha256')
    .action(async (_opts, command: Command) => {
      const text = (await io.readStdin()).replace(/\r?\n$/, '');
      if (text === '') throw usage('token hash: give the token on stdin, e.g. `printf %s "$TOKEN" | outpostctl token hash`');
      const sha256 = hashOperatorToken(text);
      if (command.optsWithGlobals<GlobalOptions>().json === true) return printJson({ sha256 });
      out(`${sha256}\n`);
    });
  token
    .command('generate')
    .description('make a new random token and print it with its sha256')
    .action(async (_opts, command: Command) => {
      const value = generateOperatorToken();
      const sha256 = hashOperatorToken(value);
      if (command.optsWithGlobals<GlobalOptions>().json === true) return printJson({ token: value, sha256 });
      out(formatFields([['token', value], ['sha256', sha256]]));
      out('Give the token to the operator; put only the sha256 in the config.\n');
    });

  try {
    await program.parseAsync([...argv], { from: 'user' });
    return CliExitCode.ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      // commander already printed why. Help asked for is success; anything else (unknown command
      // or option, missing argument, help shown for a missing subcommand) is a usage error.
      return error.code === 'commander.helpDisplayed' || error.code === 'commander.version' ? CliExitCode.ok : CliExitCode.usage;
    }
    if (error instanceof CliError) {
      // An empty message: the command already said everything (a watch that ended with its rollout).
      if (error.message !== '') io.stderr.write(`outpostctl: ${error.message}\n`);
      return error.exitCode;
    }
    io.stderr.write(`outpostctl: unexpected failure: ${(error as Error).stack ?? String(error)}\n`);
    return CliExitCode.apiError;
  }
}
