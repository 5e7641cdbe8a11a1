import { describe, expect, it } from 'vitest';
import { createScoringSession } from './onnx-session.js';
import { readOnnxModelSummary } from './onnx-writer.js';
import { buildConstantScoreModel, buildExternalDataModel, buildPcaModel, EXTERNAL_DATA_LOCATION, scorePcaReference } from './pca-model.js';
import { createRandom } from '@outpost/shared/testing';

function randomMatrix(random: () => number, rows: number, cols: number, spread = 1): number[][] {
  return Array.from({ length: rows }, () => Array.from({ length: cols }, () => (random() * 2 - 1) * spread));
}

describe('buildPcaModel', () => {
  it('writes opset 17 with ReduceMean axes as an attribute, the features -> score contract, and reproducible bytes', () => {
    const components = randomMatrix(createRandom(1), 3, 8);
    const bytes = buildPcaModel({ components, metadata: { version: '1.0.0' } });
    const summary = readOnnxModelSummary(bytes);
    expect(summary).toMatchObject({ irVersion: 8, opset: 17, inputs: ['features'], outputs: ['score'] });
    expect(summary.opTypes).toEqual(['MatMul', 'MatMul', 'Sub', 'Mul', 'ReduceMean']);
    expect(summary.initializers).toEqual([
      { name: 'W', dims: [8, 3], external: false },
      { name: 'W_T', dims: [3, 8], external: false },
    ]);
    expect(summary.metadata).toEqual({ version: '1.0.0' });
    expect(Buffer.from(buildPcaModel({ components, metadata: { version: '1.0.0' } })).equals(Buffer.from(bytes))).toBe(true);
  });

  it('refuses components of unequal length or a model without a length', () => {
    expect(() => buildPcaModel({ components: [[1, 2], [3]] })).toThrow(/component 1 holds 1 values, expected 2/);
    expect(() => buildPcaModel({ components: [] })).toThrow(/featureLength/);
    expect(() => buildPcaModel({ components: [[1, Number.NaN]] })).toThrow(/non-finite/);
  });

  it('scores like the JavaScript reference within 1e-5 in onnxruntime, for several k and batch sizes', async () => {
    const random = createRandom(2);
    for (const [n, k] of [
      [20, 6],
      [8, 1],
      [5, 0],
      [16, 16],
    ] as const) {
      // Orthonormal-ish or not, the graph computes x - x W W^T; random weights test the wiring.
      const components = randomMatrix(random, k, n, 0.3);
      const session = await createScoringSession(buildPcaModel({ components, featureLength: n }), { featureLength: n });
      try {
        for (const rowCount of [1, 7, 64]) {
          const rows = new Float32Array(rowCount * n).map(() => (random() * 2 - 1) * 3);
          const scores = await session.run(rows);
          expect(scores).toHaveLength(rowCount);
          scores.forEach((score, r) => {
            const expected = scorePcaReference(rows.subarray(r * n, (r + 1) * n), components);
            expect(Math.abs(score - expected), `n=${n} k=${k} row ${r}: ${score} vs ${expected}`).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(expected)));
          });
        }
      } finally {
        await session.close();
      }
    }
  });

  it('gives a zero score to a row inside the span of orthonormal components', async () => {
    const components = [
      [1, 0, 0, 0],
      [0, Math.SQRT1_2, Math.SQRT1_2, 0],
    ];
    const session = await createScoringSession(buildPcaModel({ components }), { featureLength: 4 });
    try {
      const scores = await session.run(Float32Array.of(2, 3, 3, 0, 0, 0, 0, 2));
      expect(scores[0]).toBeCloseTo(0, 6);
      expect(scores[1]).toBeCloseTo(1, 6);
      expect(scorePcaReference([0, 0, 0, 2], components)).toBe(1);
    } finally {
      await session.close();
    }
  });
});

describe('createScoringSession', () => {
  it('refuses bytes that are no model, or a model without the named input or output, as MODEL_INVALID', async () => {
    await expect(createScoringSession(new Uint8Array([1, 2, 3, 4]), { featureLength: 4 })).rejects.toMatchObject({ code: 'MODEL_INVALID' });
    const bytes = buildPcaModel({ components: [[1, 0, 0, 0]] });
    await expect(createScoringSession(bytes, { featureLength: 4, inputName: 'x' })).rejects.toMatchObject({ code: 'MODEL_INVALID', message: expect.stringMatching(/no input "x"/) });
    await expect(createScoringSession(bytes, { featureLength: 4, outputName: 'y' })).rejects.toMatchObject({ code: 'MODEL_INVALID', message: expect.stringMatching(/outputs score/) });
  });
});

describe('buildConstantScoreModel', () => {
  it('scores every row the same, whatever it holds', async () => {
    const session = await createScoringSession(buildConstantScoreModel(6, 42.5), { featureLength: 6 });
    try {
      const rows = new Float32Array(3 * 6).map((_, i) => i * 1000 - 7);
      expect(Array.from(await session.run(rows))).toEqual([42.5, 42.5, 42.5]);
    } finally {
      await session.close();
    }
  });
});

describe('buildExternalDataModel', () => {
  it('references an external data file from its W initializer', async () => {
    const bytes = buildExternalDataModel(4);
    const summary = readOnnxModelSummary(bytes);
    expect(summary.initializers.find((i) => i.name === 'W')).toEqual({ name: 'W', dims: [4, 1], external: true });
    // Loaded from bytes, onnxruntime cannot resolve the file: the model is unusable as well as unsafe.
    await expect(createScoringSession(bytes, { featureLength: 4 })).rejects.toMatchObject({ code: 'MODEL_INVALID', message: expect.stringMatching(/cannot load/) });
    expect(EXTERNAL_DATA_LOCATION).toMatch(/\.bin$/);
  });
});
