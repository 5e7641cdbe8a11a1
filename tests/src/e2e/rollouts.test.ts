// Model rollouts end to end (DESIGN section 3): a control plane process, six agent processes
// running local inference on a signed model, devices publishing all along. A good model goes
// out in waves 1 / 2 / 3; a model that flags everything fails its first wave's gate and is
// reverted; artifacts that are replayed, tampered with or unsigned are refused by the agents.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Objm } from '@nats-io/obj';
import { connect } from '@nats-io/transport-node';
import { generateSigningKey, MODEL_STORE_BUCKET, type AgentListResponse, type RolloutView } from '@outpost/shared';
import { signedConstantModel } from '../harness/agent-process.js';
import { controlPlaneApi, startControlPlaneProcess, testControlPlaneConfig, type ControlPlaneProcess } from '../harness/control-plane-process.js';
import { startNatsServer, type NatsServer } from '../harness/nats-server.js';
import { BASE_MODEL, rolloutApi, startTestFleet, type TestFleet } from '../harness/rollout-fleet.js';
import { createTempDir, type TempDir } from '../harness/temp-dir.js';
import { readUplinkStream } from '../harness/uplink-stream.js';
import { waitFor } from '../harness/wait.js';

const key = generateSigningKey('rollout-key');
let dir: TempDir;
let nats: NatsServer;
let cp: ControlPlaneProcess;
let fleet: TestFleet;

beforeAll(async () => {
  dir = await createTempDir('outpost-rollouts-');
  nats = await startNatsServer({ secure: true });
  cp = await startControlPlaneProcess(testControlPlaneConfig(nats, { rollouts: { tickMs: 200 }, fleet: { offlineAfterMs: 5_000 } }), dir.path);
  fleet = await startTestFleet({ dir: dir.path, nats, key, count: 6, ratePerDevicePerS: 10 });
  // Every agent known to the control plane, serving the base model.
  await waitFor(
    async () => {
      const { body } = await controlPlaneApi(cp.httpPort).get<AgentListResponse>('/api/agents');
      return body.agents.length === 6 && body.agents.every((a) => a.versions?.model === `constant@${BASE_MODEL.version}`);
    },
    { what: 'six agents serving the base model', timeoutMs: 60_000 },
  );
}, 120_000);

afterAll(async () => {
  await fleet?.close();
  await cp?.kill9();
  await nats?.stop();
  await dir?.remove();
});

async function agentModels(): Promise<Record<string, string | undefined>> {
  const { body } = await controlPlaneApi(cp.httpPort).get<AgentListResponse>('/api/agents');
  return Object.fromEntries(body.agents.map((a) => [a.agentId, a.versions?.model]));
}

describe('model rollouts', () => {
  it('a good model in waves 1 / 2 / 3 with soak: every agent runs it, every message scored by exactly one model, every step in the history with its gate values', async () => {
    const api = rolloutApi(cp.httpPort);
    const good = signedConstantModel(0.2, '2.0.0', key, { threshold: 0.5 });
    expect((await api.publishModel(good.signed, good.onnx)).status).toBe(201);
    const created = await api.create({
      id: 'good-model',
      name: 'constant 2.0.0 to the lab',
      selector: { labels: { site: 'lab' } },
      change: { model: { name: 'constant', version: '2.0.0' } },
      strategy: { waves: [1, 2, 3], soak: '3s', waveDeadline: '60s' },
      gates: { anomalyRate: { minRows: 20 }, inferenceErrorRate: { max: 0.01, minRows: 20 } },
    });
    expect(created.status).toBe(201);
    const done = await api.waitFor('good-model', ['succeeded', 'rolled-back', 'paused']);
    expect(done.status, done.reason).toBe('succeeded');
    expect(done.history.map((h) => [h.seq, h.action, h.wave])).toEqual([
      [1, 'created', undefined],
      [2, 'wave-started', 0],
      [3, 'wave-passed', 0],
      [4, 'wave-started', 1],
      [5, 'wave-passed', 1],
      [6, 'wave-started', 2],
      [7, 'succeeded', 2],
    ]);
    expect(done.waves.map((w) => done.targets.filter((t) => t.wave === w.index).length)).toEqual([1, 2, 3]);
    for (const entry of done.history.filter((h) => h.action === 'wave-passed' || h.action === 'succeeded')) {
      expect(entry.gates!.map((g) => [g.gate, g.outcome])).toEqual([
        ['applied', 'pass'],
        ['healthy', 'pass'],
        ['inferenceErrorRate', 'pass'],
        ['anomalyRate', 'pass'],
      ]);
      expect(entry.gates!.find((g) => g.gate === 'anomalyRate')!.values['rows']).toBeGreaterThanOrEqual(20);
    }
    expect(done.history.find((h) => h.action === 'created')!.actor).toBe('operator');
    await waitFor(async () => Object.values(await agentModels()).every((m) => m === 'constant@2.0.0'), { what: 'every agent on 2.0.0' });

    // Every telemetry message of every device has exactly one inference result, from 1.0.0 until
    // its agent swapped and from 2.0.0 after: scores tell the models apart (0.1 and 0.2).
    const before = fleet.load.ackedCount();
    await fleet.load.whenAcked(before + 120);
    const records = await waitFor(
      async () => {
        const all = await readUplinkStream(nats);
        const acked = new Set([...fleet.load.acked].flatMap(([deviceId, seqs]) => seqs.slice(0, -40).map((s) => `${deviceId}:${s}`)));
        const scored = new Set(all.filter((r) => r.kind === 'inference').map((r) => `${r.deviceId}:${r.deviceSeq}`));
        return [...acked].every((k) => scored.has(k)) ? all : undefined;
      },
      { what: 'inference results for the acknowledged messages', timeoutMs: 60_000, intervalMs: 500 },
    );
    const results = new Map<string, number[]>();
    const perMessage = new Map<string, number>();
    for (const r of records.filter((x) => x.kind === 'inference')) {
      const k = `${r.agentId}:${r.seq}`;
      if (perMessage.has(k)) continue; // the same agent record resent by the uplink
      perMessage.set(k, 1);
      const message = `${r.deviceId}:${r.deviceSeq}`;
      const list = results.get(message) ?? [];
      list.push((r.body as { score: number }).score);
      results.set(message, list);
    }
    const twice = [...results].filter(([, scores]) => scores.length !== 1);
    expect(twice, 'messages scored more than once').toEqual([]);
    for (const [deviceId, seqs] of fleet.load.acked) {
      const scores = seqs.map((s) => results.get(`${deviceId}:${s}`)?.[0]).filter((s): s is number => s !== undefined);
      const firstNew = scores.findIndex((s) => Math.abs(s - 0.2) < 1e-6);
      expect(firstNew, `${deviceId} never scored by 2.0.0`).toBeGreaterThanOrEqual(0);
      // Before the swap only 1.0.0, after it only 2.0.0.
      expect(scores.slice(0, firstNew).every((s) => Math.abs(s - BASE_MODEL.score) < 1e-6)).toBe(true);
      expect(scores.slice(firstNew).every((s) => Math.abs(s - 0.2) < 1e-6)).toBe(true);
    }
  }, 240_000);

  it('a model that flags everything fails the first wave on its anomaly rate; the updated agent goes back, no other ever gets it', async () => {
    const api = rolloutApi(cp.httpPort);
    const bad = signedConstantModel(0.9, '3.0.0', key, { threshold: 0.5 });
    expect((await api.publishModel(bad.signed, bad.onnx)).status).toBe(201);
    expect(
      (
        await api.create({
          id: 'flag-everything',
          name: 'constant 3.0.0 (flags every row)',
          change: { model: { name: 'constant', version: '3.0.0' } },
          strategy: { waves: [1, 2, 3], soak: '3s', waveDeadline: '60s' },
          gates: { anomalyRate: { minRows: 20 } },
          onFailure: 'rollback',
        })
      ).status,
    ).toBe(201);
    const done: RolloutView = await api.waitFor('flag-everything', ['succeeded', 'rolled-back', 'paused']);
    expect(done.status).toBe('rolled-back');
    const failed = done.history.at(-1)!;
    expect(failed).toMatchObject({ action: 'wave-failed', wave: 0, status: 'rolled-back' });
    const gate = failed.gates!.find((g) => g.gate === 'anomalyRate')!;
    expect(gate.outcome).toBe('fail');
    expect(gate.values['rate']).toBe(1);
    expect(done.targets).toHaveLength(1);
    const updated = done.targets[0]!.agentId;
    // Back on what it ran before (2.0.0, from the first rollout), by a rollback the agent accepts.
    await waitFor(async () => (await agentModels())[updated] === 'constant@2.0.0', { what: `${updated} back on 2.0.0` });
    const models = await agentModels();
    expect(Object.values(models).every((m) => m === 'constant@2.0.0')).toBe(true);
    // The others' desired state was never touched by this rollout.
    const { body: view } = await api.get('flag-everything');
    expect(view.targets.map((t) => t.agentId)).toEqual([updated]);
  }, 180_000);

  it('a replayed older manifest, a tampered artifact and unsigned ones are refused by the agent with their codes; it keeps running its model', async () => {
    const api = rolloutApi(cp.httpPort);
    const cpApi = controlPlaneApi(cp.httpPort);
    /** Rolls `version` out to gw-0 alone; returns the agent's refusal once the wave stopped on it. */
    const refusalOf = async (id: string, version: string): Promise<{ code: string | undefined; reason: string | undefined }> => {
      const created = await api.create({
        id,
        name: `try ${version}`,
        selector: { agents: ['gw-0'] },
        change: { model: { name: 'constant', version } },
        strategy: { waves: [1], soak: '1s', waveDeadline: '30s' },
        onFailure: 'pause',
      });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      const stopped = await api.waitFor(id, ['paused', 'succeeded', 'rolled-back']);
      expect(stopped.status).toBe('paused');
      const { body } = await cpApi.get<AgentListResponse>('/api/agents');
      const gw0 = body.agents.find((a) => a.agentId === 'gw-0')!;
      expect(gw0.desired).toMatchObject({ status: 'refused', origin: { rolloutId: id } });
      expect(stopped.waves[0]!.failed[0]!.reason).toContain(gw0.desired!.code!);
      expect(gw0.versions?.model).toBe('constant@2.0.0');
      // Aborted, the agent that refused is sent back to what it had: it applies that.
      expect((await api.act(id, 'abort')).status).toBe(200);
      await waitFor(async () => {
        const again = (await cpApi.get<AgentListResponse>('/api/agents')).body.agents.find((a) => a.agentId === 'gw-0')!;
        return again.desired?.origin?.rolloutId === id && again.desired.origin.action === 'rollback' && again.desired.status === 'applied';
      }, { what: `gw-0 back after ${id} was aborted` });
      return { code: gw0.desired!.code, reason: gw0.desired!.reason };
    };

    // An older version, validly signed, offered again: a downgrade the desired state does not call a rollback.
    const older = signedConstantModel(BASE_MODEL.score, BASE_MODEL.version, key, { threshold: 0.5 });
    expect((await api.publishModel(older.signed, older.onnx)).status).toBe(201);
    expect(await refusalOf('replay-older', BASE_MODEL.version)).toMatchObject({ code: 'MODEL_VERSION_OLDER' });

    // A good model whose bytes are changed in the store after publishing.
    const good = signedConstantModel(0.3, '4.0.0', key, { threshold: 0.5 });
    expect((await api.publishModel(good.signed, good.onnx)).status).toBe(201);
    const tampered = Buffer.from(good.onnx);
    tampered[tampered.length - 1] = tampered[tampered.length - 1]! ^ 0xff;
    await overwriteObject('constant/4.0.0/model.onnx', tampered);
    expect(await refusalOf('tampered', '4.0.0')).toMatchObject({ code: 'MODEL_DIGEST_MISMATCH' });

    // Signed by a key the agents do not trust, and a signature that is not the key's.
    const stranger = generateSigningKey('stranger');
    const foreign = signedConstantModel(0.3, '5.0.0', stranger, { threshold: 0.5 });
    expect((await api.publishModel(foreign.signed, foreign.onnx)).status).toBe(201);
    expect(await refusalOf('untrusted-key', '5.0.0')).toMatchObject({ code: 'MODEL_KEY_UNTRUSTED' });
    const forged = signedConstantModel(0.3, '6.0.0', key, { threshold: 0.5 });
    const signature = Buffer.from(forged.signed.signature.value, 'base64');
    signature[0] = signature[0]! ^ 0xff;
    const forgedSigned = { ...forged.signed, signature: { ...forged.signed.signature, value: signature.toString('base64') } };
    expect((await api.publishModel(forgedSigned, forged.onnx)).status).toBe(201);
    expect(await refusalOf('bad-signature', '6.0.0')).toMatchObject({ code: 'MODEL_SIGNATURE_INVALID' });
    // With no signature at all, the control plane refuses it already.
    const unsigned = await api.publishModel({ manifest: forged.signed.manifest }, forged.onnx);
    expect(unsigned.status).toBe(400);
    expect(unsigned.body).toMatchObject({ error: { code: 'MODEL_INVALID' } });
  }, 180_000);
});

/** Replaces an object of the model store behind the control plane's back (a compromised store). */
async function overwriteObject(name: string, bytes: Uint8Array): Promise<void> {
  const nc = await connect(nats.clientOptions());
  try {
    const store = await new Objm(nc).open(MODEL_STORE_BUCKET);
    await store.putBlob({ name }, bytes);
  } finally {
    await nc.close();
  }
}
