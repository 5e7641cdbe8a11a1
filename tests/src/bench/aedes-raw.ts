// The peer and limit: plain aedes (no auth hooks, no validation, no storage) with an
// in-process subscriber, loaded by the same publishers. It runs inside the bench process,
// so broker and load generator share one event loop (the agent has a process of its own).
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { runLoadSequence, type PacedRunOptions, type PacedRunResult, type WindowedRunOptions, type WindowedRunResult } from './publishers.js';

export interface AedesRawOptions {
  devices: number;
  warmup: WindowedRunOptions;
  throughput: WindowedRunOptions;
  paced?: PacedRunOptions;
}

export interface AedesRawResult {
  throughput: WindowedRunResult;
  /** Cores the bench process (publishers + broker) used during the throughput run. */
  throughputBenchCores: number;
  paced: PacedRunResult | undefined;
  /** Messages the in-process subscriber received, all runs. */
  delivered: number;
  ackedTotal: number;
}

export async function runAedesRawScenario(options: AedesRawOptions): Promise<AedesRawResult> {
  const { Aedes } = await import('aedes');
  const broker = await Aedes.createBroker();
  let delivered = 0;
  await new Promise<void>((resolve) =>
    broker.subscribe(
      'devices/+/telemetry',
      (_packet, callback) => {
        delivered += 1;
        callback();
      },
      resolve,
    ),
  );
  const server = net.createServer((socket) => {
    socket.setNoDelay(true); // as the agent's embedded broker does
    broker.handle(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  try {
    const { port } = server.address() as AddressInfo;
    const { throughput, throughputBenchCores, paced, ackedTotal: acked } = await runLoadSequence(`mqtt://127.0.0.1:${port}`, 'bench-dev', options);
    if (delivered !== acked) throw new Error(`aedes subscriber received ${delivered} messages, publishers got ${acked} PUBACKs`);
    return { throughput, throughputBenchCores, paced, delivered, ackedTotal: acked };
  } finally {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    await closed;
  }
}
