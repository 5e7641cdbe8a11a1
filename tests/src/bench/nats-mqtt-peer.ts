// The NATS-native peer: nats-server's own MQTT listener with a JetStream stream capturing the
// device subjects, the edge pattern a user might pick instead of Outpost (a NATS leaf node on
// the gateway). A QoS 1 PUBACK from nats-server means the message is stored in the stream
// (file storage; 2.9.10 does not fsync per message). Loaded by the same publishers as the agent.
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { getFreePort } from '../harness/free-port.js';
import { startNatsServer } from '../harness/nats-server.js';
import { waitForTcp } from '../harness/wait.js';
import { runLoadSequence, type PacedRunOptions, type PacedRunResult, type WindowedRunOptions, type WindowedRunResult } from './publishers.js';

export interface NatsMqttPeerOptions {
  devices: number;
  warmup: WindowedRunOptions;
  throughput: WindowedRunOptions;
  paced?: PacedRunOptions;
}

export interface NatsMqttPeerResult {
  throughput: WindowedRunResult;
  paced: PacedRunResult | undefined;
  /** Messages in the capturing stream after all runs: must equal the PUBACKs. */
  stored: number;
  ackedTotal: number;
}

const STREAM = 'BENCH_DEVICES';

export async function runNatsMqttPeerScenario(options: NatsMqttPeerOptions): Promise<NatsMqttPeerResult> {
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
      const { throughput, paced, ackedTotal: acked } = await runLoadSequence(`mqtt://127.0.0.1:${mqttPort}`, 'peer-dev', options);
      const stored = (await jsm.streams.info(STREAM)).state.messages;
      if (stored !== acked) throw new Error(`nats-server MQTT peer: stream holds ${stored} messages, publishers got ${acked} PUBACKs`);
      return { throughput, paced, stored, ackedTotal: acked };
    } finally {
      await nc.close();
    }
  } finally {
    await server.stop();
  }
}
