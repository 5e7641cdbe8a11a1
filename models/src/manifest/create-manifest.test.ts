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

  it('refuses a manifest that does not describe its graph: another opset, or bytes that are no model', () => {
    const codeOf = (fn: () => unknown): string | undefined => {
      try {
        fn();
      } catch (err) {
        return isOutpostError(err) ? err.code : 'not an OutpostError';
      }
      return undefined;
    };
    let caught: unknown;
    try {
      createManifest({ ...base, opset: 18 });
    } catch (err) {
      caught = err;
    }
    expect(isOutpostError(caught, 'MODEL_INVALID')).toBe(true);
    expect((caught as Error).message).toMatch(/opset: 18, but the graph imports opset 17/);
    expect(codeOf(() => createManifest({ ...base, onnx: new Uint8Array([0xff, 0xff, 0xff]) }))).toBe('MODEL_INVALID');
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
