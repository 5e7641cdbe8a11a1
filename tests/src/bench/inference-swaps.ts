// Memory across model swaps: an agent process scores a steady load while its model is swapped
// again and again (new files + SIGHUP, what an operator does). The figure is the growth of the
// agent's RSS from after the first swap to after the last, each read after a full garbage
// collection forced through the agent's inspector (see tests/src/e2e/inference-swap.test.ts,
// which asserts the same within 5%; here it is measured, not judged).
import { join } from 'node:path';
import { generateSigningKey } from '@outpost/shared';
import { signedConstantModel, testAgentConfig, testInferenceConfig, writeModelFiles } from '../harness/agent-process.js';
import { connectDevice, startSteadyLoad } from '../harness/devices.js';
import { childPids, connectInspector, readRssMb, startInspectableAgent } from '../harness/process-inspect.js';
import { createTempDir } from '../harness/temp-dir.js';
import { waitFor } from '../harness/wait.js';

export interface SwapPlan {
  swaps: number;
  devices: number;
  ratePerDevicePerS: number;
  /** Acknowledged messages between two swaps (and before each RSS reading). */
  messagesBetweenSwaps: number;
}

export interface SwapResult {
  swaps: number;
  rssAfterFirstMb: number;
  rssAfterLastMb: number;
  growthPct: number;
  /** Inference processes alive at the end: 1 when every old one was ended. */
  inferenceProcesses: number;
  config: SwapPlan;
}

export async function runSwapBench(plan: SwapPlan, log: (line: string) => void): Promise<SwapResult> {
  await using dir = await createTempDir('outpost-bench-swaps-');
  const key = generateSigningKey('bench-swap-key');
  const version = (k: number): string => `1.0.${k}`;
  const first = signedConstantModel(0, version(0), key);
  const files = await writeModelFiles(dir.path, 'model', first.onnx, first.signed);
  const { agent, inspectorPort } = await startInspectableAgent(
    testAgentConfig(join(dir.path, 'data'), { agentId: 'bench-swaps', ingest: { rateLimitMsgsPerS: 0 }, log: { level: 'info' }, inference: testInferenceConfig(files, [key.trustedKey]) }),
  );
  const inspector = await connectInspector(inspectorPort);
  const devices = await Promise.all(
    Array.from({ length: plan.devices }, async (_, d) => {
      const client = await connectDevice(`mqtt://127.0.0.1:${agent.mqttPort}`, { clientId: `swap-dev-${d}` });
      client.on('error', () => undefined);
      return { deviceId: `swap-dev-${d}`, client };
    }),
  );
  const load = startSteadyLoad(devices, plan.ratePerDevicePerS);
  const measureRss = async (): Promise<number> => {
    await load.whenAcked(load.ackedCount() + plan.messagesBetweenSwaps);
    await inspector.collectGarbage();
    return readRssMb(agent.pid);
  };
  try {
    let rssAfterFirstMb = 0;
    let rssAfterLastMb = 0;
    log(`  ${plan.swaps} swaps at ${plan.devices * plan.ratePerDevicePerS} msg/s ...`);
    for (let k = 1; k <= plan.swaps; k++) {
      const next = signedConstantModel(k, version(k), key);
      await writeModelFiles(dir.path, 'model', next.onnx, next.signed);
      process.kill(agent.pid, 'SIGHUP');
      await waitFor(() => agent.logs.some((l) => l['event'] === 'model-swapped' && (l['model'] as { version?: string } | undefined)?.version === version(k)), {
        what: `swap ${k}`,
        timeoutMs: 30_000,
      });
      if (k === 1) rssAfterFirstMb = await measureRss();
      else if (k === plan.swaps) rssAfterLastMb = await measureRss();
      else await load.whenAcked(load.ackedCount() + plan.messagesBetweenSwaps);
    }
    const inferenceProcesses = (await childPids(agent.pid)).length;
    return {
      swaps: plan.swaps,
      rssAfterFirstMb,
      rssAfterLastMb,
      growthPct: ((rssAfterLastMb - rssAfterFirstMb) / rssAfterFirstMb) * 100,
      inferenceProcesses,
      config: plan,
    };
  } finally {
    load.stop();
    await Promise.all(devices.map((d) => d.client.endAsync()));
    await inspector.close();
    await agent.stop();
  }
}
