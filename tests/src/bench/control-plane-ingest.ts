// `npm run build && node tests/dist/bench/control-plane-ingest.js [--batches N] [--records N] [--agents N] [--replicas N]`
// How fast control-plane replicas work through an uplink backlog: the batches are published
// while no replica runs (a control plane coming back after an outage), then the replicas start
// and the clock runs until the API shows every record counted. Includes start-up (connect,
// declarations) and the API probes; nats-server runs on the same machine.
import { availableParallelism } from 'node:os';
import { gzipSync } from 'node:zlib';
import { jetstream } from '@nats-io/jetstream';
import { connect, headers } from '@nats-io/transport-node';
import { pino } from 'pino';
import { AgentDetailResponseSchema, BATCH_ENCODING, batchMsgId, ControlPlaneConfigSchema, ENCODING_HEADER, parseConfig, uplinkSubject } from '@outpost/shared';
import { startControlPlane, type ControlPlane } from '@outpost/control-plane';
import { startNatsServer } from '../harness/nats-server.js';
import { waitFor } from '../harness/wait.js';
import { parseBenchArgs } from './cli-args.js';

const USAGE = 'usage: node tests/dist/bench/control-plane-ingest.js [--batches N] [--records N] [--agents N] [--replicas N]';

interface Args {
  batches: number;
  records: number;
  agents: number;
  replicas: number;
}

const DEFAULT_ARGS: Args = { batches: 400, records: 500, agents: 4, replicas: 1 };

function parseOptions(argv: string[]): Args {
  const { values } = parseBenchArgs({ args: argv, options: { batches: { type: 'string' }, records: { type: 'string' }, agents: { type: 'string' }, replicas: { type: 'string' } } }, USAGE);
  const args = { ...DEFAULT_ARGS };
  for (const key of Object.keys(args) as (keyof Args)[]) {
    const text = values[key];
    if (text === undefined) continue;
    const value = Number(text);
    if (!Number.isInteger(value) || value < 1) throw new Error(`--${key} must be an integer of at least 1, got ${JSON.stringify(text)}\n${USAGE}`);
    args[key] = value;
  }
  return args;
}

const EPOCH = 'bench0001';

async function main(): Promise<void> {
  const args = parseOptions(process.argv.slice(2));
  const server = await startNatsServer();
  const config = parseConfig(ControlPlaneConfigSchema, { nats: { servers: [server.url] }, http: { host: '127.0.0.1', port: 0 }, log: { level: 'warn' } });
  const logger = pino({ level: 'warn' });
  try {
    // Declare the streams, then publish the backlog with no replica running.
    await (await startControlPlane(config, { logger })).close();
    const nc = await connect({ servers: [server.url] });
    const js = jetstream(nc);
    const h = headers();
    h.set(ENCODING_HEADER, BATCH_ENCODING);
    const perAgent = Math.ceil(args.batches / args.agents);
    const acks = [];
    let bytes = 0;
    for (let a = 0; a < args.agents; a++) {
      const agentId = `bench-${a}`;
      for (let k = 0; k < perAgent; k++) {
        const first = k * args.records + 1;
        const records = [];
        for (let seq = first; seq < first + args.records; seq++) {
          const ts = 1_700_000_000_000 + seq;
          records.push({ seq, deviceId: `d${seq % 20}`, ts, receivedAtMs: ts, deviceSeq: Math.floor(seq / 20), kind: 'telemetry', body: { ts, seq: Math.floor(seq / 20), metrics: { temperature: 20 + (seq % 7), humidity: 0.5 } } });
        }
        const payload = gzipSync(JSON.stringify({ agentId, epoch: EPOCH, lane: 'telemetry', firstSeq: first, lastSeq: first + args.records - 1, records }));
        bytes += payload.length;
        acks.push(js.publish(uplinkSubject(agentId, 'telemetry'), payload, { msgID: batchMsgId(agentId, EPOCH, 'telemetry', first, first + args.records - 1), headers: h }));
      }
    }
    await Promise.all(acks);
    await nc.close();
    const total = perAgent * args.agents * args.records;

    const started = performance.now();
    const cpuBefore = process.cpuUsage();
    const replicas: ControlPlane[] = [];
    for (let r = 0; r < args.replicas; r++) replicas.push(await startControlPlane(config, { logger }));
    const probe = replicas[0]!;
    await waitFor(
      async () => {
        let counted = 0;
        for (let a = 0; a < args.agents; a++) {
          const response = await fetch(`http://127.0.0.1:${probe.httpPort}/api/agents/bench-${a}`);
          if (response.status !== 200) return false;
          counted += AgentDetailResponseSchema.parse(await response.json()).totals.received;
        }
        return counted >= total;
      },
      { what: `${total} records counted`, timeoutMs: 300_000, intervalMs: 20 },
    );
    const elapsedMs = performance.now() - started;
    const cpu = process.cpuUsage(cpuBefore);
    for (const cp of replicas) await cp.close();
    const perS = Math.round((total / elapsedMs) * 1000);
    console.log(
      `control-plane ingest: ${total.toLocaleString('en-US')} records (${perAgent * args.agents} batches of ${args.records}, ${args.agents} agents, ` +
        `${Math.round(bytes / (perAgent * args.agents))} B gzip per batch), ${args.replicas} replica(s), ${availableParallelism()} cores: ` +
        `${Math.round(elapsedMs)} ms = ${perS.toLocaleString('en-US')} records/s; CPU of this process ${Math.round((cpu.user + cpu.system) / 1000)} ms`,
    );
  } finally {
    await server.stop();
  }
}

await main();
