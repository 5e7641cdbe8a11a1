// The `inference` config section and start-up with a bad or missing model: config errors name
// the key; a model that fails verification never stops the agent, and a reload fixes it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateSigningKey } from '@outpost/shared';
import { loadAgentConfig } from '@outpost/agent';
import { signedConstantModel, startInProcessAgent, testAgentConfig, testInferenceConfig, writeModelFiles } from '../harness/agent-process.js';
import { connectDevice, nextMessage, publish } from '../harness/devices.js';
import { metricValue } from '../harness/metrics.js';
import { createTempDir, type TempDir } from '../harness/temp-dir.js';
import { waitFor } from '../harness/wait.js';

const key = generateSigningKey('cfg-key');

let dir: TempDir;
beforeAll(async () => {
  dir = await createTempDir('outpost-inference-config-');
});
afterAll(async () => {
  await dir.remove();
});

async function writeConfig(name: string, yaml: string): Promise<string> {
  const file = join(dir.path, name);
  await writeFile(file, yaml);
  return file;
}

const indent = (text: string, spaces: number): string => text.trimEnd().split('\n').map((l) => `${' '.repeat(spaces)}${l}`).join('\n');

describe('inference config', () => {
  it('defaults to off, and resolves model paths against the config file', async () => {
    const off = await loadAgentConfig(await writeConfig('off.yaml', 'agentId: a\ndataDir: data\n'));
    expect(off.inference.enabled).toBe(false);
    const on = await loadAgentConfig(
      await writeConfig(
        'on.yaml',
        `agentId: a\ndataDir: data\ninference:\n  enabled: true\n  model: { onnxPath: models/m.onnx, manifestPath: models/m.signed.json }\n  trustedKeys:\n    - keyId: cfg-key\n      publicKey: |\n${indent(key.publicKeyPem, 8)}\n`,
      ),
    );
    expect(on.inference).toMatchObject({
      enabled: true,
      model: { onnxPath: join(dir.path, 'models/m.onnx'), manifestPath: join(dir.path, 'models/m.signed.json') },
      maxBatchSize: 256,
      maxBatchWaitMs: 2,
    });
  });

  it('reports every bad key with its path', async () => {
    const file = await writeConfig('bad.yaml', 'agentId: a\ndataDir: data\ninference:\n  enabled: true\n  maxBatchSize: 0\n  restartInitialDelayMs: 500\n  restartMaxDelayMs: 100\n  colour: blue\n');
    const error = await loadAgentConfig(file).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CONFIG_INVALID' });
    const message = (error as Error).message;
    expect(message).toContain('inference.maxBatchSize:');
    expect(message).toContain('inference.colour: unknown key');
    // Checked once the shape is valid: a refinement of the whole section.
    const refined = await loadAgentConfig(await writeConfig('refined.yaml', 'agentId: a\ndataDir: data\ninference:\n  enabled: true\n  restartInitialDelayMs: 500\n  restartMaxDelayMs: 100\n')).catch((e: unknown) => e);
    expect((refined as Error).message).toContain('inference.trustedKeys: needs at least one key when inference is enabled');
    expect((refined as Error).message).toContain('inference.restartMaxDelayMs: must be at least restartInitialDelayMs');
  });

  it('refuses a trusted key that is not an ed25519 public key, naming it', async () => {
    const file = await writeConfig(
      'key.yaml',
      `agentId: a\ndataDir: data\ninference:\n  enabled: true\n  trustedKeys:\n    - keyId: private\n      publicKey: |\n${indent(key.privateKeyPem, 8)}\n`,
    );
    const error = await loadAgentConfig(file).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CONFIG_INVALID' });
    expect((error as Error).message).toContain('inference.trustedKeys.0.publicKey:');
  });
});

describe('agent start with a bad or missing model', () => {
  it('starts without a model when the files are bad, counts it, and serves after a reload', async () => {
    const good = signedConstantModel(5, '1.0.0', key);
    const tampered = Uint8Array.from(good.onnx);
    tampered[10] = tampered[10]! ^ 0x01;
    const files = await writeModelFiles(dir.path, 'start', tampered, good.signed);
    await using agent = await startInProcessAgent(
      testAgentConfig(join(dir.path, 'start-data'), { agentId: 'start', log: { level: 'error' }, inference: testInferenceConfig(files, [key.trustedKey]) }),
    );
    const inference = agent.inference!;
    expect(inference.status()).toMatchObject({ up: false, model: undefined });
    const health = await fetch(`http://127.0.0.1:${agent.httpPort}/healthz`);
    expect(health.status).toBe(503);
    expect(await health.json()).toMatchObject({ checks: expect.arrayContaining([{ name: 'inference', ok: false, detail: 'no model loaded' }]) });

    // Ingest goes on; telemetry is counted as unscored for want of a model.
    const client = await connectDevice(`mqtt://127.0.0.1:${agent.mqttPort}`, { clientId: 'dev-s' });
    try {
      await publish(client, 'devices/dev-s/telemetry', JSON.stringify({ ts: Date.now(), seq: 1, metrics: { temperature: 20 } }));
      await waitFor(async () => metricValue(await agent.metrics.registry.metrics(), 'outpost_inference_unscored_rows_total', { reason: 'no-model' }) === 1, { what: 'a no-model count' });
      const metrics = await agent.metrics.registry.metrics();
      expect(metricValue(metrics, 'outpost_inference_swap_refusals_total', { code: 'MODEL_DIGEST_MISMATCH' })).toBe(1);

      // Reloading the files (what SIGHUP does) still refuses them; once fixed, it serves.
      await expect(inference.reloadModelFiles()).rejects.toMatchObject({ code: 'MODEL_DIGEST_MISMATCH' });
      await writeModelFiles(dir.path, 'start', good.onnx, good.signed);
      await expect(inference.reloadModelFiles()).resolves.toMatchObject({ model: { name: 'constant', version: '1.0.0' }, previous: undefined });
      expect(inference.status().up).toBe(true);
      const result = nextMessage(client, 'devices/dev-s/inference');
      await publish(client, 'devices/dev-s/telemetry', JSON.stringify({ ts: Date.now(), seq: 2, metrics: { temperature: 20 } }));
      expect(JSON.parse((await result).toString('utf8'))).toMatchObject({ model: { version: '1.0.0' }, score: 5, anomaly: false });
      expect((await (await fetch(`http://127.0.0.1:${agent.httpPort}/healthz`)).json()) as unknown).toMatchObject({
        checks: expect.arrayContaining([{ name: 'inference', ok: true, detail: 'constant@1.0.0' }]),
      });
    } finally {
      client.end(true);
    }
  });

  it('without inference.model, an enabled agent waits for a swap; reloadModelFiles says there is nothing to reload', async () => {
    await using agent = await startInProcessAgent(
      testAgentConfig(join(dir.path, 'none-data'), { agentId: 'none', log: { level: 'error' }, inference: testInferenceConfig(undefined, [key.trustedKey]) }),
    );
    await expect(agent.inference!.reloadModelFiles()).rejects.toMatchObject({ code: 'MODEL_INVALID' });
    const model = signedConstantModel(3, '2.0.0', key);
    await expect(agent.inference!.swapModel({ onnxBytes: model.onnx, signedManifest: model.signed })).resolves.toMatchObject({ model: { version: '2.0.0' } });
    expect(agent.inference!.status()).toMatchObject({ up: true, model: { name: 'constant', version: '2.0.0' } });
  });
});
