import { describe, expect, it } from 'vitest';
import { isOutpostError, sha256Hex } from '@outpost/shared';
import { buildPcaModel } from '../onnx/pca-model.js';
import { createManifest } from './create-manifest.js';
import { TEST_FEATURE_SPEC } from './test-model.js';

const onnx = buildPcaModel({ components: [[1, 0, 0, 0, 0, 0]] });
const base = {
  name: 'anomaly-pca',
  version: '2.0.0',
  createdAt: '2026-11-25T00:00:00.000Z',
  onnx,
  featureSpec: TEST_FEATURE_SPEC,
  threshold: 1.5,
  testVectors: [{ input: [0, 0, 0, 0, 0, 1], expectedScore: 1 / 6 }],
};

describe('createManifest', () => {
  it('describes the bytes, the tensor contract and the defaults', () => {
    const manifest = createManifest(base);
    expect(manifest.artifact).toEqual({ sha256: sha256Hex(onnx), sizeBytes: onnx.byteLength });
    expect(manifest.input).toEqual({ name: 'features', dims: [-1, 6] });
    expect(manifest.output).toEqual({ name: 'score', dims: [-1] });
    expect(manifest.opset).toBe(17);
    expect(manifest.testTolerance).toBe(1e-4);
    expect(manifest.expiresAt).toBe('2027-11-25T00:00:00.000Z');
    expect(manifest).not.toHaveProperty('description');
  });

  it('refuses an invalid manifest with the path of each problem', () => {
    let caught: unknown;
    try {
      createManifest({ ...base, version: 'v 2', testVectors: [{ input: [1], expectedScore: 0 }], expiresAt: '2020-01-01T00:00:00.000Z' });
    } catch (err) {
      caught = err;
    }
    expect(isOutpostError(caught, 'MODEL_INVALID')).toBe(true);
    const message = (caught as Error).message;
    for (const path of ['version:', 'testVectors.0.input: must hold 6 values', 'expiresAt: must be after createdAt']) expect(message).toContain(path);
  });
});
