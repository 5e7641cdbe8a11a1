import { describe, expect, it } from 'vitest';
import { generateSigningKey, signManifest, verifyModelArtifact, verifySignedManifest } from '@outpost/shared';
import { createScoringSession } from '../onnx/onnx-session.js';
import { makeTestModel } from './test-model.js';

describe('makeTestModel', () => {
  it('gives a model whose manifest verifies once signed and whose self-test vectors pass in onnxruntime', async () => {
    for (const model of [makeTestModel(), makeTestModel({ constantScore: 7, version: '2.0.0', threshold: 1 })]) {
      const key = generateSigningKey('test');
      const signed = signManifest(model.manifest, key.privateKeyPem, 'test');
      const manifest = verifySignedManifest(JSON.parse(JSON.stringify(signed)), [key.trustedKey], Date.parse('2030-01-01T00:00:00Z'));
      verifyModelArtifact(model.onnx, manifest);
      const n = manifest.input.dims[1]!;
      const session = await createScoringSession(model.onnx, { featureLength: n });
      try {
        const scores = await session.run(Float32Array.from(manifest.testVectors.flatMap((v) => v.input)));
        manifest.testVectors.forEach((v, i) => expect(Math.abs(scores[i]! - v.expectedScore)).toBeLessThanOrEqual(manifest.testTolerance));
      } finally {
        await session.close();
      }
    }
  });

  it('is deterministic and distinguishes versions by bytes only where the model differs', () => {
    expect(makeTestModel()).toEqual(makeTestModel());
    expect(makeTestModel({ version: '9' }).manifest.artifact).toEqual(makeTestModel().manifest.artifact);
    expect(makeTestModel({ constantScore: 1 }).manifest.artifact.sha256).not.toBe(makeTestModel({ constantScore: 2 }).manifest.artifact.sha256);
    expect(makeTestModel({ constantScore: 5 }).manifest.testVectors.every((v) => v.expectedScore === 5)).toBe(true);
  });
});
