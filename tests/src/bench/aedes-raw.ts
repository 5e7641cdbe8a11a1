// The broker limit: plain aedes (no auth hooks, no validation, no storage) with one in-process
// subscriber, in a process of its own (aedes-raw-server.ts), loaded by the same generator as
// the agent: the raw-socket generator (loadgen.ts) by default, or the mqtt.js devices of the
// "realistic client" profile (publishers.ts).
import { fileURLToPath } from 'node:url';
import { spawnOwned } from '../harness/wait.js';
import { cpuMark, coresSince, runRawLoadSequence, type GeneratorCost, type LoadGenPacedResult, type LoadGenWindowedResult, type RawLoadPlan } from './loadgen.js';
import { runLoadSequence, type PacedRunResult, type WindowedRunResult } from './publishers.js';

const SERVER_MAIN = fileURLToPath(new URL('./aedes-raw-server.js', import.meta.url));

export interface AedesRawResult {
  throughput: WindowedRunResult | LoadGenWindowedResult;
  /** Cores the aedes process used during the throughput run. */
  throughputServerCores: number;
  paced: PacedRunResult | LoadGenPacedResult | undefined;
  /** Messages the in-process subscriber received, all runs. */
  delivered: number;
  ackedTotal: number;
  client: 'raw' | 'mqtt.js';
  /**
   * The throughput run again from two generator processes (raw client, when asked). aedes is
   * the fastest system here, the one most likely to be held down by a single generator
   * process: its limit is the better of the two runs, or the ratio against it would flatter us.
   */
  secondGenerator: { msgsPerS: number; serverCores: number; generator: GeneratorCost } | undefined;
}

export async function runAedesRawScenario(plan: RawLoadPlan, client: 'raw' | 'mqtt.js' = 'raw', checkSecondGenerator = false): Promise<AedesRawResult> {
  const server = await spawnOwned(process.execPath, [SERVER_MAIN], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const { child } = server;
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('aedes server not ready within 10 s')), 10_000);
      child.once('message', (m: { port: number }) => {
        clearTimeout(timer);
        resolve(m.port);
      });
    });
    const pid = child.pid ?? -1;
    let result: Omit<AedesRawResult, 'delivered' | 'client'>;
    if (client === 'raw') {
      const r = await runRawLoadSequence(port, 'bench-dev', plan, { aedes: pid });
      result = { throughput: r.throughput, throughputServerCores: r.throughputCores['aedes'] ?? 0, paced: r.paced, ackedTotal: r.ackedTotal, secondGenerator: undefined };
      if (checkSecondGenerator) {
        const again = await runRawLoadSequence(port, 'bench-dev', { ...plan, paced: undefined, processes: 2 }, { aedes: pid });
        result.ackedTotal += again.ackedTotal;
        result.secondGenerator = { msgsPerS: again.throughput.msgsPerS, serverCores: again.throughputCores['aedes'] ?? 0, generator: again.throughput.generator };
      }
    } else {
      let mark: Awaited<ReturnType<typeof cpuMark>> | undefined;
      let serverCores = 0;
      const r = await runLoadSequence(`mqtt://127.0.0.1:${port}`, 'bench-dev', plan, {
        beforeThroughput: async () => void (mark = await cpuMark({ aedes: pid })),
        afterThroughput: async () => void (serverCores = coresSince(mark!, await cpuMark({ aedes: pid }))['aedes'] ?? 0),
      });
      result = { throughput: r.throughput, throughputServerCores: serverCores, paced: r.paced, ackedTotal: r.ackedTotal, secondGenerator: undefined };
    }
    const delivered = await new Promise<number>((resolve) => {
      child.once('message', (m: { delivered: number }) => resolve(m.delivered));
      child.send({ cmd: 'delivered' });
    });
    if (delivered !== result.ackedTotal) throw new Error(`aedes subscriber received ${delivered} messages, publishers got ${result.ackedTotal} PUBACKs`);
    return { ...result, delivered, client };
  } finally {
    await server.kill();
  }
}
