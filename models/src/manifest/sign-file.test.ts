import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isOutpostError, verifyModelArtifact, verifySignedManifest } from '@outpost/shared';
import { defaultKeyId, defaultSignedFile, loadOrCreateSigningKey, signManifestFile } from './sign-file.js';
import { makeTestModel } from './test-model.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'outpost-sign-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
  } catch (err) {
    if (isOutpostError(err)) return err.code;
    throw err;
  }
  return undefined;
}

describe('loadOrCreateSigningKey', () => {
  it('creates the key on first use (owner-only), then reuses it', async () => {
    const keyFile = join(dir, '.keys', 'dev-signing-key.pem');
    const first = await loadOrCreateSigningKey(keyFile, { generate: true });
    expect(first.generated).toBe(true);
    expect(first.keyId).toBe('dev-signing-key');
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    expect(await readFile(join(dir, '.keys', 'dev-signing-key.pub.pem'), 'utf8')).toBe(first.trustedKey.publicKey);
    const second = await loadOrCreateSigningKey(keyFile, { generate: true, keyId: 'ops-1' });
    expect(second.generated).toBe(false);
    expect(second.keyId).toBe('ops-1');
    expect(second.trustedKey.publicKey).toBe(first.trustedKey.publicKey);
  });

  it('refuses a missing key it may not create, and a file that is no ed25519 key', async () => {
    expect(await codeOf(loadOrCreateSigningKey(join(dir, 'nope.pem'), { generate: false }))).toBe('MODEL_KEY_INVALID');
    const junk = join(dir, 'junk.pem');
    await writeFile(junk, 'not a key');
    expect(await codeOf(loadOrCreateSigningKey(junk, { generate: true }))).toBe('MODEL_KEY_INVALID');
  });

  it('derives a valid key id from any file name', () => {
    expect(defaultKeyId('/x/my key@home.pem')).toBe('my-key-home');
  });
});

describe('signManifestFile', () => {
  it('writes a signed manifest that verifies with the printed trusted key', async () => {
    const model = makeTestModel();
    const manifestFile = join(dir, 'anomaly-pca-1.0.0.manifest.json');
    await writeFile(manifestFile, JSON.stringify(model.manifest));
    const key = await loadOrCreateSigningKey(join(dir, 'k.pem'), { generate: true });
    const { outFile } = await signManifestFile({ manifestFile, key });
    expect(outFile).toBe(join(dir, 'anomaly-pca-1.0.0.signed.json'));
    expect(defaultSignedFile('m.json')).toBe('m.json.signed.json');
    const verified = verifySignedManifest(JSON.parse(await readFile(outFile, 'utf8')), [key.trustedKey], Date.parse('2030-01-01T00:00:00Z'));
    expect(verified).toEqual(model.manifest);
    verifyModelArtifact(model.onnx, verified);
    // A signed manifest given back is re-signed from its body (e.g. with another key).
    const other = await loadOrCreateSigningKey(join(dir, 'other.pem'), { generate: true });
    const again = await signManifestFile({ manifestFile: outFile, key: other, outFile: join(dir, 'again.json') });
    expect(again.signed.signature.keyId).toBe('other');
    expect(verifySignedManifest(again.signed, [other.trustedKey], Date.parse('2030-01-01T00:00:00Z'))).toEqual(model.manifest);
  });

  it('refuses a file that is not a manifest, naming the bad fields', async () => {
    const manifestFile = join(dir, 'bad.manifest.json');
    await writeFile(manifestFile, JSON.stringify({ ...makeTestModel().manifest, threshold: 'high', opset: 0 }));
    const key = await loadOrCreateSigningKey(join(dir, 'k.pem'), { generate: true });
    const error = await signManifestFile({ manifestFile, key }).catch((err: unknown) => err);
    expect(isOutpostError(error, 'MODEL_INVALID')).toBe(true);
    expect((error as Error).message).toMatch(/^threshold: /m);
    expect((error as Error).message).toMatch(/^opset: /m);
    await writeFile(manifestFile, '{"name": ');
    expect(await codeOf(signManifestFile({ manifestFile, key }))).toBe('MODEL_INVALID');
    // A key loaded lazily is not created for a manifest that cannot be signed.
    const lazyKeyFile = join(dir, 'lazy', 'dev.pem');
    expect(await codeOf(signManifestFile({ manifestFile, key: () => loadOrCreateSigningKey(lazyKeyFile, { generate: true }) }))).toBe('MODEL_INVALID');
    await expect(stat(lazyKeyFile)).rejects.toThrow(/ENOENT/);
  });
});
