import { describe, expect, it } from 'vitest';
import { buildMaxScoreModel, scoreMaxReference } from './max-score-model.js';
import { createScoringSession } from './onnx-session.js';
import { readOnnxModelSummary } from './onnx-writer.js';
import { createRandom } from '@outpost/shared/testing';

describe('buildMaxScoreModel', () => {
  it('writes opset 17 with ReduceMax axes as an attribute, the features -> score contract, and reproducible bytes', () => {
    const options = { upper: [1, 2, 0.5], lower: [1, 0, 0.25], metadata: { version: '2.0.0' } };
    const bytes = buildMaxScoreModel(options);
    const summary = readOnnxModelSummary(bytes);
    expect(summary).toMatchObject({ irVersion: 8, opset: 17, inputs: ['features'], outputs: ['score', 'evidence'], metadata: { version: '2.0.0' } });
    expect(summary.opTypes).toEqual(['Mul', 'Mul', 'Max', 'ReduceMax']);
    expect(summary.initializers).toEqual([
      { name: 'upper', dims: [3], external: false },
      { name: 'lower_negated', dims: [3], external: false },
    ]);
    expect(Buffer.from(buildMaxScoreModel(options)).equals(Buffer.from(bytes))).toBe(true);
  });

  it('refuses weights that are negative, not finite or of unequal length', () => {
    expect(() => buildMaxScoreModel({ upper: [1, -1], lower: [0, 0] })).toThrow(/weight 1 of upper must be finite and >= 0/);
    expect(() => buildMaxScoreModel({ upper: [1], lower: [Number.NaN] })).toThrow(/weight 0 of lower/);
    expect(() => buildMaxScoreModel({ upper: [1, 1], lower: [0] })).toThrow(/same number/);
    expect(() => buildMaxScoreModel({ upper: [], lower: [] })).toThrow(/same number \(>= 1\)/);
  });

  it('scores the strongest evidence, as the JavaScript reference does, in onnxruntime for any batch size', async () => {
    const random = createRandom(7);
    const n = 12;
    const upper = Array.from({ length: n }, () => random() * 2);
    // A third of the detectors one-sided: their low side weighs nothing.
    const lower = upper.map((_, j) => (j % 3 === 0 ? 0 : random() * 2));
    const session = await createScoringSession(buildMaxScoreModel({ upper, lower }), { featureLength: n });
    try {
      for (const batch of [1, 7, 300]) {
        const rows = Float32Array.from({ length: batch * n }, () => (random() * 2 - 1) * 5);
        const scores = await session.run(rows);
        expect(scores).toHaveLength(batch);
        for (let i = 0; i < batch; i++) expect(scores[i]).toBeCloseTo(scoreMaxReference(rows.subarray(i * n, (i + 1) * n), upper, lower).score, 6);
      }
      // Known answers: the evidence of x is max(x * upper, -x * lower), the score the largest of them.
      const bytes = buildMaxScoreModel({ upper: [1, 2], lower: [0, 0.5] });
      const known = await createScoringSession(bytes, { featureLength: 2 });
      const evidence = await createScoringSession(bytes, { featureLength: 2, outputName: 'evidence' });
      try {
        expect(Array.from(await known.run(Float32Array.of(-3, 0.5, 0.25, -6, -1, -1)))).toEqual([1, 3, 0.5]);
        // Which detector gave it: -3 is nothing on a one-sided detector, 0.5 * 2 = 1; 0.25; -6 * -0.5 = 3.
        expect(Array.from(await evidence.run(Float32Array.of(-3, 0.5, 0.25, -6)))).toEqual([0, 1, 0.25, 3]);
        expect(scoreMaxReference([0.25, -6], [1, 2], [0, 0.5])).toEqual({ score: 3, feature: 1 });
      } finally {
        await known.close();
        await evidence.close();
      }
    } finally {
      await session.close();
    }
  });
});
