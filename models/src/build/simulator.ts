import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { access, constants } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode, OutpostError } from '@outpost/shared';

/**
 * Records a scenario with the simulator's CLI (`outpost-sim devices --record`), the one
 * source of training and evaluation traffic. models/ does not import the simulators code
 * (DESIGN section 1): it depends on the package for its binary and its scenario files, and
 * runs the binary like a user would.
 */

/** The repository root, from this file's place in models/src or models/dist (for models' own data and keys). */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** The installed @outpost/simulators package (a dependency of models), wherever npm put it. */
function simulatorsPackage(): { dir: string; bin: string } {
  const manifestFile = createRequire(import.meta.url).resolve('@outpost/simulators/package.json');
  const manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as { bin?: Record<string, string> };
  const bin = manifest.bin?.['outpost-sim'];
  if (bin === undefined) throw new OutpostError(ErrorCode.HARNESS_MISSING_BINARY, `${manifestFile} declares no outpost-sim binary`);
  return { dir: dirname(manifestFile), bin };
}

/** A scenario file shipped with the simulators package, e.g. `train.yaml`. */
export function simulatorScenario(name: string): string {
  return join(simulatorsPackage().dir, 'scenarios', name);
}

async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The command that runs outpost-sim: the `outpost-sim` bin on PATH (npm scripts put
 * node_modules/.bin there), else the package's own bin file.
 */
export async function resolveSimulatorCommand(pathEnv = process.env['PATH'] ?? ''): Promise<{ file: string; args: string[] }> {
  for (const dir of pathEnv.split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, 'outpost-sim');
    if (await isExecutable(candidate)) return { file: candidate, args: [] };
  }
  const { dir, bin } = simulatorsPackage();
  const built = resolve(dir, bin);
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
