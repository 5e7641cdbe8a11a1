import { execFile } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { delimiter, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode, OutpostError } from '@outpost/shared';

/**
 * Records a scenario with the simulator's CLI (`outpost-sim devices --record`), the one
 * source of training and evaluation traffic. models/ does not import the simulators package
 * (DESIGN section 1); it runs its binary like a user would.
 */

/** The repository root, from this file's place in models/src or models/dist. */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The command that runs outpost-sim: the `outpost-sim` workspace bin on PATH (npm scripts put
 * node_modules/.bin there), else the built simulators/dist/main.js of this checkout.
 */
export async function resolveSimulatorCommand(pathEnv = process.env['PATH'] ?? ''): Promise<{ file: string; args: string[] }> {
  for (const dir of pathEnv.split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, 'outpost-sim');
    if (await isExecutable(candidate)) return { file: candidate, args: [] };
  }
  const built = resolve(REPO_ROOT, 'simulators/dist/main.js');
  try {
    await access(built, constants.R_OK);
  } catch {
    throw new OutpostError(ErrorCode.HARNESS_MISSING_BINARY, `outpost-sim is not on PATH and ${built} does not exist: build the simulators first (npm run build)`);
  }
  return { file: process.execPath, args: [built] };
}

export interface RecordRequest {
  scenarioFile: string;
  /** Overrides the scenario's seed. */
  seed?: string | number;
  recordFile: string;
  truthFile: string;
}

/** What outpost-sim's `--json` summary says about a recording (the fields used here). */
export interface RecordingSummary {
  messages: number;
  episodes: number;
  devices: number;
  firstTs: number | undefined;
  lastTs: number | undefined;
}

/**
 * Runs `outpost-sim devices --scenario F [--seed N] --record R --truth T --json`. A bad
 * scenario or a failing simulator is SCENARIO_INVALID with the simulator's own message.
 */
export async function recordWithSimulator(request: RecordRequest): Promise<RecordingSummary> {
  const command = await resolveSimulatorCommand();
  const args = [
    ...command.args,
    'devices',
    '--scenario',
    request.scenarioFile,
    ...(request.seed === undefined ? [] : ['--seed', String(request.seed)]),
    '--record',
    request.recordFile,
    '--truth',
    request.truthFile,
    '--json',
  ];
  const { stdout } = await new Promise<{ stdout: string }>((resolvePromise, reject) => {
    execFile(command.file, args, { maxBuffer: 16 * 1024 * 1024 }, (error, out, err) => {
      if (error !== null) {
        reject(new OutpostError(ErrorCode.SCENARIO_INVALID, `outpost-sim could not record ${request.scenarioFile}: ${err.trim() || error.message}`, { cause: error }));
        return;
      }
      resolvePromise({ stdout: out });
    });
  });
  const line = stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as RecordingSummary;
  } catch (cause) {
    throw new OutpostError(ErrorCode.SCENARIO_INVALID, `outpost-sim printed no JSON summary: ${line.slice(0, 200)}`, { cause });
  }
}
