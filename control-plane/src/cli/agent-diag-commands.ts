// `outpostctl agents doctor|status|logs ID`: an agent's diagnostics, asked of the agent itself
// through the control plane (which asks it over NATS; issue [install]).
import type { Command } from 'commander';
import {
  AgentDiagStatusSchema,
  AgentIdSchema,
  DEFAULT_DIAG_LOG_LINES,
  DiagLogsReplySchema,
  DOCTOR_CHECK_TITLES,
  DoctorReportSchema,
  sleep,
  type AgentDiagStatus,
  type DiagLogLine,
  type DoctorReport,
  type DoctorStatus,
} from '@outpost/shared';
import { createApiClient } from './api-client.js';
import { checkId, expectBody, parsePositiveInt, parseUrl, DEFAULT_CONTROL_PLANE_URL, type CommandKit, type GlobalOptions } from './command-kit.js';
import { CliError, CliExitCode } from './exit-codes.js';
import type { Style } from './style.js';
import { formatFields } from './table.js';
import { formatAge, formatTime } from './time.js';

/** The control plane gives an agent 30 s for its doctor; the CLI waits a little longer unless --timeout says otherwise. */
export const DEFAULT_DOCTOR_CLI_TIMEOUT_MS = 40_000;
/** `agents logs --follow` asks for new lines this often by default, ms. */
export const DEFAULT_FOLLOW_INTERVAL_MS = 1_000;

const MARKS: Readonly<Record<DoctorStatus, string>> = { ok: 'ok', warn: 'WARN', fail: 'FAIL', skip: 'skip' };

function paint(style: Style, status: DoctorStatus, text: string): string {
  if (status === 'ok') return style.green(text);
  if (status === 'warn') return style.yellow(text);
  if (status === 'fail') return style.red(text);
  return style.dim(text);
}

/** The report as `outpost-agent doctor` prints it: a header, a line per check, the remedy under it. */
export function formatDoctorReport(report: DoctorReport, style: Style): string {
  const counts = (['ok', 'warn', 'fail', 'skip'] as const)
    .map((status) => [status, report.checks.filter((c) => c.status === status).length] as const)
    .filter(([, n]) => n > 0)
    .map(([status, n]) => `${n} ${status}`)
    .join(', ');
  const lines = [`doctor agent ${report.agentId ?? '?'} (${report.origin === 'agent' ? 'inside the running agent' : 'on the gateway'}): ${paint(style, report.status, report.status.toUpperCase())} (${counts}); config ${report.configFile ?? '-'}`];
  const width = Math.max(...report.checks.map((c) => DOCTOR_CHECK_TITLES[c.id].length));
  const indent = ' '.repeat(10 + width);
  for (const check of report.checks) {
    lines.push(`  ${paint(style, check.status, MARKS[check.status].padEnd(4))}  ${DOCTOR_CHECK_TITLES[check.id].padEnd(width)}  ${check.summary}`);
    if (check.status !== 'ok') for (const detail of check.details ?? []) lines.push(`${indent}- ${detail}`);
    if (check.remedy !== undefined) lines.push(`${indent}-> ${check.remedy}`);
  }
  return `${lines.join('\n')}\n`;
}

function formatBytes(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MiB` : bytes >= 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${bytes} B`;
}

export function formatDiagStatus(status: AgentDiagStatus, nowMs: number): string {
  const hb = status.lastHeartbeat;
  const outbox = status.outbox;
  return formatFields([
    ['Agent', `${status.agentId} (agent ${status.agentVersion}, pid ${status.pid}, node ${status.nodeVersion})`],
    ['Up since', `${formatTime(status.startedAtMs)} (${formatAge(status.startedAtMs, status.nowMs)})`],
    ['Clock', `${formatTime(status.nowMs)} by the agent (${formatAge(status.nowMs, nowMs)} by this machine's)`],
    ['Uplink', status.uplink.connected ? 'connected' : 'disconnected (buffering)'],
    ['Outbox', `${outbox.records.events + outbox.records.telemetry} records (${outbox.records.events} events, ${outbox.records.telemetry} telemetry), ${formatBytes(outbox.bytes)} of ${formatBytes(outbox.maxBytes)}${outbox.oldestReceivedAtMs === undefined ? '' : `, oldest ${formatAge(outbox.oldestReceivedAtMs, status.nowMs)}`}`],
    ['Evicted', `${outbox.evicted.events} events, ${outbox.evicted.telemetry} telemetry; ${outbox.deadLetters} dead letters kept`],
    ['Broker', status.broker.mode === 'bridge' ? 'bridge to the site broker' : `MQTT ${status.broker.mqttPort ?? '-'}${status.broker.tlsPort === undefined ? '' : `, MQTT/TLS ${status.broker.tlsPort}`}`],
    ['Devices', hb === undefined ? '-' : `${hb.ingest.devicesConnected} connected; ${hb.ingest.accepted} accepted, ${hb.ingest.rejected} rejected`],
    ['Versions', hb === undefined ? '-' : Object.entries(hb.versions).map(([k, v]) => `${k} ${v}`).join(', ')],
    ['Heartbeat', hb === undefined ? 'none sent yet' : `last sent ${formatAge(hb.ts, status.nowMs)}`],
    ['Logs', `${status.logs.keptLines} of the last ${status.logs.maxLines} lines kept (agents logs ${status.agentId})`],
  ]);
}

/** One log line for people: time, level, message, then the other fields; a line that is not JSON as it is. */
export function formatLogLine(line: DiagLogLine): string {
  let entry: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(line.text);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return line.text;
    entry = parsed as Record<string, unknown>;
  } catch {
    return line.text;
  }
  const { time, level, msg } = entry;
  // Fields every line of the agent carries: not worth repeating on each.
  const rest = Object.fromEntries(Object.entries(entry).filter(([key]) => !['time', 'level', 'msg', 'pid', 'hostname', 'name', 'agentId'].includes(key)));
  const when = typeof time === 'number' ? new Date(time).toISOString() : '-';
  const levels: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
  const lvl = typeof level === 'number' ? (levels[level] ?? String(level)) : String(level ?? '-');
  const extra = Object.keys(rest).length === 0 ? '' : ` ${JSON.stringify(rest)}`;
  return `${when} ${lvl.padEnd(5)} ${typeof msg === 'string' ? msg : ''}${extra}`;
}

export function registerAgentDiagCommands(agents: Command, kit: CommandKit): void {
  const { out, printJson, context, io } = kit;

  agents
    .command('doctor')
    .description("run the agent's doctor inside the agent (config, data dir, outbox, NATS, clock skew, MQTT port, model files, certificates) and print its report; exit 0 ok, 13 a warning, 14 a failure")
    .argument('<agentId>')
    .action(async (agentId: string, _opts, command: Command) => {
      const id = checkId(AgentIdSchema, 'agent id', agentId);
      const c = context(command);
      const globals = command.optsWithGlobals<GlobalOptions>();
      // The doctor takes longer than a read: wait for it unless --timeout says otherwise.
      const api =
        globals.timeout !== undefined
          ? c.api
          : createApiClient({ url: parseUrl(globals.url ?? io.env.url ?? DEFAULT_CONTROL_PLANE_URL), token: (globals.token ?? io.env.token) || undefined, timeoutMs: DEFAULT_DOCTOR_CLI_TIMEOUT_MS, ...(io.signal === undefined ? {} : { signal: io.signal }) });
      const body = await api.get(`/api/agents/${encodeURIComponent(id)}/diag/doctor`);
      const report = expectBody(DoctorReportSchema, body, 'agents doctor');
      if (c.json) printJson(body);
      else out(formatDoctorReport(report, c.style));
      if (report.status === 'fail') throw new CliError(CliExitCode.doctorFail, '');
      if (report.status === 'warn') throw new CliError(CliExitCode.doctorWarn, '');
    });

  agents
    .command('status')
    .description("the agent's live status, asked of the agent now: process, uplink, outbox, broker, last heartbeat (agents show reads the fleet registry instead)")
    .argument('<agentId>')
    .action(async (agentId: string, _opts, command: Command) => {
      const id = checkId(AgentIdSchema, 'agent id', agentId);
      const c = context(command);
      const body = await c.api.get(`/api/agents/${encodeURIComponent(id)}/diag/status`);
      if (c.json) return printJson(body);
      out(formatDiagStatus(expectBody(AgentDiagStatusSchema, body, 'agents status'), io.now()));
    });

  agents
    .command('logs')
    .description(`the agent's recent log lines (it keeps the last ${DEFAULT_DIAG_LOG_LINES}, secrets redacted), oldest first; --follow keeps asking for new ones until Ctrl-C; --json prints the agent's JSON lines as they are`)
    .argument('<agentId>')
    .option('-n, --lines <n>', `only the last n lines kept (1 to ${DEFAULT_DIAG_LOG_LINES})`)
    .option('-f, --follow', 'keep printing new lines as the agent writes them')
    .option('--interval <ms>', `with --follow, ask for new lines this often (default ${DEFAULT_FOLLOW_INTERVAL_MS})`)
    .action(async (agentId: string, opts: { lines?: string; follow?: boolean; interval?: string }, command: Command) => {
      const id = checkId(AgentIdSchema, 'agent id', agentId);
      const lastLines = opts.lines === undefined ? DEFAULT_DIAG_LOG_LINES : parsePositiveInt('--lines', opts.lines, DEFAULT_DIAG_LOG_LINES);
      const intervalMs = opts.interval === undefined ? DEFAULT_FOLLOW_INTERVAL_MS : parsePositiveInt('--interval', opts.interval, 3_600_000);
      const c = context(command);
      const print = (line: DiagLogLine): void => out(`${c.json ? line.text : formatLogLine(line)}\n`);
      const read = async (afterSeq: number) => {
        const body = await c.api.get(`/api/agents/${encodeURIComponent(id)}/diag/logs?after=${afterSeq}`);
        return expectBody(DiagLogsReplySchema, body, 'agents logs');
      };
      /**
       * Every line after `afterSeq` the agent has now (a reply holds at most 512 KiB: ask again
       * while it says more), and the agent's newest sequence number: below `afterSeq` when the
       * agent restarted (its numbering starts again).
       */
      const readAll = async (afterSeq: number): Promise<{ lines: DiagLogLine[]; lastSeq: number; missed: number }> => {
        const lines: DiagLogLine[] = [];
        let after = afterSeq;
        let missed = 0;
        for (;;) {
          const reply = await read(after);
          missed += reply.missed;
          lines.push(...reply.lines);
          after = reply.lines.at(-1)?.seq ?? after;
          if (!reply.more) return { lines, lastSeq: reply.lastSeq, missed };
        }
      };

      const first = await readAll(0);
      for (const line of first.lines.slice(-lastLines)) print(line);
      if (opts.follow !== true) return;
      const signal = io.signal;
      const interrupted = (): boolean => signal?.aborted === true;
      let after = first.lastSeq;
      let unreachable = false;
      while (!interrupted()) {
        await sleep(intervalMs, signal).catch(() => undefined);
        if (interrupted()) break;
        try {
          let next = await readAll(after);
          if (unreachable) io.stderr.write(`outpostctl: agent ${id} answers again\n`);
          unreachable = false;
          if (next.lastSeq < after) {
            io.stderr.write(`outpostctl: agent ${id} restarted; its log starts again\n`);
            next = await readAll(0);
          }
          if (next.missed > 0) io.stderr.write(`outpostctl: ${next.missed} lines went by unread (the agent keeps the last ${DEFAULT_DIAG_LOG_LINES})\n`);
          for (const line of next.lines) print(line);
          after = next.lines.at(-1)?.seq ?? next.lastSeq;
        } catch (error) {
          // An agent that restarts or drops off for a moment: say so once, keep asking.
          if (!(error instanceof CliError) || error.code !== 'AGENT_UNREACHABLE') throw error;
          if (!unreachable) io.stderr.write(`outpostctl: ${error.message}; still asking\n`);
          unreachable = true;
        }
      }
      throw new CliError(CliExitCode.interrupted, '');
    });

}
