// `outpost-agent doctor`: is this gateway's agent healthy, and if not, why and what to do. The
// checks run as a named list of steps, in order; each reads what the earlier ones found (the
// config, the NATS link) and gives ok / warn / fail / skip with a one-line remedy. The same
// steps run in a separate process (`origin: local`) and inside the running agent (`agent`,
// asked over NATS by the control plane); only the environment differs (doctor/environment.ts).
import { doctorOverall, type AgentConfig, type DoctorCheck, type DoctorReport } from '@outpost/shared';
import { AGENT_VERSION } from '../version.js';
import { checkFail, type DoctorContext, type DoctorEnvironment, type DoctorStep } from './check.js';
import { certificateCheck } from './certificate-check.js';
import { clockCheck } from './clock-check.js';
import { configCheck } from './config-check.js';
import { dataDirCheck } from './data-dir-check.js';
import { modelCheck } from './model-check.js';
import { mqttPortCheck } from './mqtt-port-check.js';
import { natsCheck } from './nats-check.js';
import { outboxCheck } from './outbox-check.js';

/** The checks, in the order they run (the clock check uses the nats check's connection). */
export const DOCTOR_STEPS: readonly DoctorStep[] = [configCheck, dataDirCheck, outboxCheck, natsCheck, clockCheck, mqttPortCheck, modelCheck, certificateCheck];

export interface RunDoctorOptions {
  /** The agent's config file, as given to `--config`. */
  configFile: string | undefined;
  /** Without a file: the config the running agent was started with (in-process agents). */
  runningConfig?: AgentConfig | undefined;
  env: DoctorEnvironment;
  /** The steps to run; default DOCTOR_STEPS. */
  steps?: readonly DoctorStep[];
}

/** Runs every check and reports them all; never throws (a check that throws is reported as failed). */
export async function runDoctor(options: RunDoctorOptions): Promise<DoctorReport> {
  const ctx: DoctorContext = { configFile: options.configFile, runningConfig: options.runningConfig, env: options.env };
  const checks: DoctorCheck[] = [];
  try {
    for (const step of options.steps ?? DOCTOR_STEPS) checks.push(await runStep(step, ctx));
  } finally {
    await ctx.nats?.close().catch(() => undefined);
  }
  return {
    ...(ctx.config === undefined ? {} : { agentId: ctx.config.agentId }),
    ...(options.configFile === undefined ? {} : { configFile: options.configFile }),
    origin: options.env.origin,
    agentVersion: AGENT_VERSION,
    atMs: Math.round(options.env.now()),
    status: doctorOverall(checks),
    checks,
  };
}

async function runStep(step: DoctorStep, ctx: DoctorContext): Promise<DoctorCheck> {
  try {
    return await step.run(ctx);
  } catch (error) {
    return checkFail(step.id, { summary: `the check itself failed: ${(error as Error).message}`, remedy: 'a bug in the doctor: report it with this line and the agent version' });
  }
}
