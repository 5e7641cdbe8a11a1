// `outpostctl rollout create|ls|status|pause|resume|abort|rollback`: rollouts of models and
// managed config over the fleet, in waves gated on what the updated agents do.
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { RolloutIdSchema, RolloutListResponseSchema, RolloutPlanSchema, RolloutViewSchema } from '@outpost/shared';
import { checkId, expectBody, usage, type CommandKit } from './command-kit.js';
import { CliError, CliExitCode } from './exit-codes.js';
import { describeStatus, formatActionResult, formatPlan, formatRolloutList, formatRolloutStatus } from './rollout-format.js';
import { parseSpecText, type SpecSource } from './spec-file.js';
import { watchRollout } from './watch.js';

const ACTIONS = {
  pause: 'no further step until resumed',
  resume: 'go on (a wave paused as inconclusive or failed counts as passed)',
  abort: 'stop for good; agents already updated keep the change',
  rollback: 'every agent the rollout changed goes back to what it ran before, in one step',
} as const;

/** How a watched rollout ended, when not with success: an exit code with nothing more to print. */
export class WatchEnded extends CliError {
  constructor(exitCode: CliExitCode) {
    super(exitCode, '');
    this.name = 'WatchEnded';
  }
}

/** How `--watch` ends, for its help. */
const WATCH_ENDINGS: readonly (readonly [CliExitCode, string])[] = [
  [CliExitCode.ok, 'the rollout succeeded'],
  [CliExitCode.rolloutFailed, 'the rollout failed'],
  [CliExitCode.rolloutRolledBack, 'the rollout was rolled back'],
  [CliExitCode.rolloutAborted, 'the rollout was aborted'],
  [CliExitCode.interrupted, 'Ctrl-C: stopped watching (the rollout goes on)'],
];

const WATCH_HELP = `
--watch redraws a progress bar per wave in place on a terminal (one frame per change), or
appends a line per change otherwise (--json: one rollout view per line). It follows the event
stream, reads the rollout again on each change and every second, and ends when the rollout
does, with an exit code that says how:
${WATCH_ENDINGS.map(([code, meaning]) => `${String(code).padStart(5)}  ${meaning}`).join('\n')}
Other failures exit as listed in outpostctl --help.
`;

/** Reads `-f FILE` (`-` is stdin). */
async function readSpec(file: string, readStdin: () => Promise<string>): Promise<SpecSource> {
  let text: string;
  if (file === '-') {
    text = await readStdin();
  } else {
    try {
      text = await readFile(file, 'utf8');
    } catch (cause) {
      throw usage(`cannot read the rollout spec ${file}: ${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}`);
    }
  }
  return parseSpecText(text, file === '-' ? 'stdin' : file);
}

interface SpecIssue {
  path: string;
  message: string;
}

function specIssues(details: Readonly<Record<string, unknown>> | undefined): SpecIssue[] | undefined {
  const issues = details?.['issues'];
  if (!Array.isArray(issues)) return undefined;
  const valid = issues.filter((i): i is SpecIssue => typeof (i as SpecIssue | null)?.path === 'string' && typeof (i as SpecIssue).message === 'string');
  return valid.length === 0 ? undefined : valid;
}

/** A spec the control plane refused: each bad key by its path and its line in the file. */
function explainRefusal(error: CliError, spec: SpecSource): CliError {
  const issues = specIssues(error.details);
  if (issues === undefined) return error;
  const lines = issues.map((i) => {
    const line = spec.lineOf(i.path);
    return `  ${spec.name}${line === undefined ? '' : `:${line}`}: ${i.path}: ${i.message}`;
  });
  return new CliError(error.exitCode, `the control plane refused the rollout spec in ${spec.name} (${error.code ?? 'invalid'}):\n${lines.join('\n')}`, { ...(error.code === undefined ? {} : { code: error.code }), details: error.details ?? {}, cause: error });
}

export function registerRolloutCommands(program: Command, kit: CommandKit): void {
  const { out, printJson, context, io } = kit;
  const rollout = program.command('rollout').description('roll models and managed config out over the fleet in gated waves');
  const rolloutId = (id: string): string => checkId(RolloutIdSchema, 'rollout id', id);

  rollout
    .command('create')
    .description('create a rollout from a spec file (YAML or JSON); --dry-run shows which agent goes in which wave and why')
    .requiredOption('-f, --file <path>', 'the rollout spec, YAML or JSON; - reads stdin')
    .option('--dry-run', 'create nothing: print the plan (waves, rank and order key of each agent, agents left out and why)')
    .action(async (opts: { file: string; dryRun?: boolean }, command: Command) => {
      const spec = await readSpec(opts.file, io.readStdin);
      const c = context(command);
      const dryRun = opts.dryRun === true;
      let answer;
      try {
        answer = await c.api.post('/api/rollouts', { spec: spec.value, ...(dryRun ? { dryRun: true } : {}) });
      } catch (error) {
        throw error instanceof CliError ? explainRefusal(error, spec) : error;
      }
      if (c.json) return printJson(answer.body);
      if (dryRun) return out(formatPlan(expectBody(RolloutPlanSchema, answer.body, 'rollout create --dry-run'), c.style));
      const view = expectBody(RolloutViewSchema, answer.body, 'rollout create');
      out(`Created rollout ${view.id}: ${describeStatus(view)}, ${view.waves.length} wave(s), ${view.plannedAgents} agent(s) selected now.\n`);
      out(`Follow it: outpostctl rollout status ${view.id} --watch\n`);
    });

  rollout
    .command('ls')
    .description('list the rollouts, newest first')
    .action(async (_opts, command: Command) => {
      const c = context(command);
      const body = await c.api.get('/api/rollouts');
      if (c.json) return printJson(body);
      out(formatRolloutList(expectBody(RolloutListResponseSchema, body, 'rollout ls'), io.now(), c.style));
    });

  rollout
    .command('status')
    .description('one rollout: waves with progress, gate values with their thresholds, history; --watch follows it live')
    .argument('<id>')
    .option('-w, --watch', 'follow it until it ends; the exit code says how it ended')
    .addHelpText('after', WATCH_HELP)
    .action(async (id: string, opts: { watch?: boolean }, command: Command) => {
      const rolloutIdChecked = rolloutId(id);
      const c = context(command);
      if (opts.watch === true) {
        const code = await watchRollout({
          api: c.api,
          id: rolloutIdChecked,
          out: { write: out, isTTY: io.stdout.isTTY, size: () => ({ columns: io.stdout.columns, rows: io.stdout.rows }) },
          err: io.stderr,
          style: c.style,
          json: c.json,
          now: io.now,
          signal: io.signal ?? new AbortController().signal,
        });
        // Not an error: how the rollout ended, for scripts; the watch already said it.
        if (code !== CliExitCode.ok) throw new WatchEnded(code);
        return;
      }
      const body = await c.api.get(`/api/rollouts/${encodeURIComponent(rolloutIdChecked)}`);
      if (c.json) return printJson(body);
      out(formatRolloutStatus(expectBody(RolloutViewSchema, body, 'rollout status'), io.now(), c.style));
    });

  for (const [action, description] of Object.entries(ACTIONS)) {
    rollout
      .command(action)
      .description(description)
      .argument('<id>')
      .action(async (id: string, _opts, command: Command) => {
        const checked = rolloutId(id);
        const c = context(command);
        const answer = await c.api.post(`/api/rollouts/${encodeURIComponent(checked)}/${action}`, undefined);
        if (c.json) return printJson(answer.body);
        out(formatActionResult(expectBody(RolloutViewSchema, answer.body, `rollout ${action}`), action, c.style));
      });
  }
}
