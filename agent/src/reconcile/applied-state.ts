// What the agent applied last, kept in its data dir (DESIGN section 3: an agent restarted while
// offline runs what it ran): the desired state, its revision and the report, plus the model
// files a rollout brought, cached beside it.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DesiredReportSchema, DesiredStateSchema, writeFileAtomic, type DesiredReport, type DesiredState, type Logger } from '@outpost/shared';

export const APPLIED_STATE_FILE = 'desired-state.json';
/** Model files a rollout brought live under `<dataDir>/models/<name>/<version>/`. */
export const MODEL_CACHE_DIR = 'models';


export interface AppliedState {
  /** KV revision of the desired state applied. */
  revision: number;
  desired: DesiredState;
  report: DesiredReport;
}

/** The applied state, or undefined when there is none (or it cannot be read: then the local config alone runs, and the reason is logged). */
export async function readAppliedState(dataDir: string, logger: Logger): Promise<AppliedState | undefined> {
  const path = join(dataDir, APPLIED_STATE_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') logger.error({ err, path }, 'cannot read the applied desired state; running the local config');
    return undefined;
  }
  const value = safeJson(text) as { v?: unknown; revision?: unknown; desired?: unknown; report?: unknown } | undefined;
  const desired = DesiredStateSchema.safeParse(value?.desired);
  const report = DesiredReportSchema.safeParse(value?.report);
  const revision = value?.revision;
  if (value?.v !== 1 || typeof revision !== 'number' || !Number.isSafeInteger(revision) || revision < 0 || !desired.success || !report.success) {
    logger.error({ path }, 'the applied desired state is not valid; running the local config');
    return undefined;
  }
  return { revision, desired: desired.data, report: report.data };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export async function writeAppliedState(dataDir: string, state: AppliedState): Promise<void> {
  await writeFileAtomic(join(dataDir, APPLIED_STATE_FILE), JSON.stringify({ v: 1, ...state }, null, 2));
}

/** Where a model version's files live in the cache. */
export function cachedModelFiles(dataDir: string, name: string, version: string): { onnxPath: string; manifestPath: string } {
  const dir = join(dataDir, MODEL_CACHE_DIR, name, version);
  return { onnxPath: join(dir, 'model.onnx'), manifestPath: join(dir, 'manifest.json') };
}
