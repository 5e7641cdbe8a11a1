import { describe, expect, it } from 'vitest';
import { scorePcaReference } from '../onnx/pca-model.js';
import { chooseComponentCount, covarianceMatrix, jacobiEigen, scoringComponents } from './pca.js';

function multiply(a: readonly (readonly number[])[], x: readonly number[]): number[] {
  return a.map((row) => row.reduce((s, v, i) => s + v * x[i]!, 0));
}

describe('jacobiEigen', () => {
  it('finds the eigenvalues and eigenvectors of a known 2 x 2 matrix', () => {
    // [[2, 1], [1, 2]]: eigenvalues 3 (1, 1)/sqrt2 and 1 (1, -1)/sqrt2.
    const { values, vectors } = jacobiEigen([
      [2, 1],
      [1, 2],
    ]);
    expect(values[0]).toBeCloseTo(3, 12);
    expect(values[1]).toBeCloseTo(1, 12);
    expect(vectors[0]![0]).toBeCloseTo(Math.SQRT1_2, 12);
    expect(vectors[0]![1]).toBeCloseTo(Math.SQRT1_2, 12);
    expect(Math.abs(vectors[1]![0]!)).toBeCloseTo(Math.SQRT1_2, 12);
    expect(vectors[1]![0]! * vectors[1]![1]!).toBeCloseTo(-0.5, 12);
  });

  it('finds the known spectrum of a 3 x 3 matrix', () => {
    // Eigenvalues of [[4, 1, 0], [1, 3, 1], [0, 1, 2]] are 3 and 3 +- sqrt(3).
    const { values } = jacobiEigen([
      [4, 1, 0],
      [1, 3, 1],
      [0, 1, 2],
    ]);
    expect(values[0]).toBeCloseTo(3 + Math.sqrt(3), 12);
    expect(values[1]).toBeCloseTo(3, 12);
    expect(values[2]).toBeCloseTo(3 - Math.sqrt(3), 12);
  });

  it('satisfies A v = lambda v with orthonormal vectors on a random 20 x 20 symmetric matrix', () => {
    let seed = 3;
    const random = (): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648 - 0.5;
    };
    const n = 20;
    const b = Array.from({ length: n }, () => Array.from({ length: n }, random));
    const a = b.map((_, i) => b.map((_, j) => b[i]!.reduce((s, v, k) => s + v * b[j]![k]!, 0)));
    const { values, vectors } = jacobiEigen(a);
    for (let j = 0; j < n; j++) {
      const av = multiply(a, vectors[j]!);
      av.forEach((x, i) => expect(x).toBeCloseTo(values[j]! * vectors[j]![i]!, 9));
      for (let k = 0; k < n; k++) {
        const dot = vectors[j]!.reduce((s, x, i) => s + x * vectors[k]![i]!, 0);
        expect(dot).toBeCloseTo(j === k ? 1 : 0, 10);
      }
    }
    for (let j = 1; j < n; j++) expect(values[j - 1]!).toBeGreaterThanOrEqual(values[j]!);
    expect(values.reduce((s, x) => s + x, 0)).toBeCloseTo(a.reduce((s, row, i) => s + row[i]!, 0), 9);
  });

  it('refuses a matrix that is not square or not symmetric', () => {
    expect(() => jacobiEigen([[1, 2]])).toThrow(/must be 1 x 1/);
    expect(() => jacobiEigen([
      [1, 2],
      [3, 1],
    ])).toThrow(/not symmetric/);
  });
});

describe('covarianceMatrix and chooseComponentCount', () => {
  it('computes the population covariance', () => {
    const cov = covarianceMatrix([[1, 2], [3, 6], [5, 10]], 2);
    // x: 1 3 5 (variance 8/3), y = 2x.
    expect(cov[0]![0]).toBeCloseTo(8 / 3, 12);
    expect(cov[0]![1]).toBeCloseTo(16 / 3, 12);
    expect(cov[1]![1]).toBeCloseTo(32 / 3, 12);
  });

  it('takes the fewest components reaching the ratio', () => {
    expect(chooseComponentCount([5, 3, 1, 1], 0.8)).toBe(2);
    expect(chooseComponentCount([5, 3, 1, 1], 0.81)).toBe(3);
    expect(chooseComponentCount([5, 3, 1, 1], 1)).toBe(4);
    expect(chooseComponentCount([0, 0], 0.9)).toBe(0);
  });
});

describe('scoringComponents', () => {
  const eigen = { values: [4, 1, 0.25, 0.25], vectors: [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]] };

  it('projection: the residual outside the principal directions only', () => {
    const components = scoringComponents(eigen, 2, 'projection');
    expect(scorePcaReference([10, 10, 1, 1], components)).toBeCloseTo(2 / 4, 12);
  });

  it('balanced: principal directions weighted by residual / lambda, residual directions by 1', () => {
    const components = scoringComponents(eigen, 2, 'balanced');
    // (1/4) * (0.25/4 * 4^2 + 0.25/1 * 2^2 + 1 + 1) = (1/4) * (1 + 1 + 2) = 1.
    // The reference rounds weights to float32, as the model stores them.
    expect(scorePcaReference([4, 2, 1, 1], components)).toBeCloseTo(1, 6);
  });
});
