// The NATS-native peer: nats-server's own MQTT listener with a JetStream stream capturing the
// device subjects, the edge pattern a user might pick instead of Outpost (a NATS leaf node on
// the gateway). A QoS 1 PUBACK from nats-server means the message is stored in the stream
// (file storage; 2.9.10 does not fsync per message). Loaded by the same generator as the agent.
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { getFreePort } from '../harness/free-port.js';
import { startNatsServer } from '../harness/nats-server.js';
import { waitForTcp } from '../harness/wait.js';
import { runRawLoadSequence, type LoadGenPacedResult, type LoadGenWindowedResult, type RawLoadPlan } from './loadgen.js';

export interface NatsMqttPeerResult {
  throughput: LoadGenWindowedResult;
  /** Cores nats-server used during the throughput run. */
  throughputServerCores: number;
  paced: LoadGenPacedResult | undefined;
  /** Messages in the capturing stream after all runs: must equal the PUBACKs. */
  stored: number;
  ackedTotal: number;
}

const STREAM = 'BENCH_DEVICES';

export async function runNatsMqttPeerScenario(plan: RawLoadPlan): Promise<NatsMqttPeerResult> {
  const mqttPort = await getFreePort();
  // `mqtt { listen }` needs a server_name (the harness sets one) and JetStream (FACTS).
  const server = await startNatsServer({ jetstream: true, extraConfig: `mqtt { listen: "127.0.0.1:${mqttPort}" }\n` });
  try {
    const nc = await connect({ servers: server.url });
    try {
      const jsm = await jetstreamManager(nc);
      // MQTT topic devices/{id}/telemetry is NATS subject devices.{id}.telemetry.
      await jsm.streams.add({ name: STREAM, subjects: ['devices.>'] });
      await waitForTcp('127.0.0.1', mqttPort);
      const r = await runRawLoadSequence(mqttPort, 'peer-dev', plan, { nats: server.pid });
      const stored = (await jsm.streams.info(STREAM)).state.messages;
      if (stored !== r.ackedTotal) throw new Error(`nats-server MQTT peer: stream holds ${stored} messages, publishers got ${r.ackedTotal} PUBACKs`);
      return { throughput: r.throughput, throughputServerCores: r.throughputCores['nats'] ?? 0, paced: r.paced, stored, ackedTotal: r.ackedTotal };
    } finally {
      await nc.close();
    }
  } finally {
    await server.stop();
  }
}
