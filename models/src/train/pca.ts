/**
 * Principal component analysis for the anomaly model: covariance of normalised feature rows,
 * a symmetric eigen-decomposition (cyclic Jacobi: exact enough and short for n <= 64), and the
 * scoring components the ONNX graph multiplies by.
 */

/** Eigenvalues in descending order and the matching unit eigenvectors (as rows). */
export interface EigenDecomposition {
  values: number[];
  vectors: number[][];
}

/** Jacobi sweeps before giving up; a 64 x 64 matrix converges in well under 15. */
const MAX_JACOBI_SWEEPS = 100;

/**
 * Eigen-decomposition of a real symmetric matrix by cyclic Jacobi rotations. Returns the
 * eigenvalues sorted descending with unit eigenvectors as rows (`vectors[j]` belongs to
 * `values[j]`); each vector's sign is fixed so its largest-magnitude entry is positive, which
 * makes the output reproducible. Throws RangeError for a non-square or non-symmetric matrix.
 */
export function jacobiEigen(matrix: readonly (readonly number[])[]): EigenDecomposition {
  const n = matrix.length;
  const a = matrix.map((row, i) => {
    if (row.length !== n) throw new RangeError(`row ${i} holds ${row.length} values; the matrix must be ${n} x ${n}`);
    return Float64Array.from(row);
  });
  let scale = 0;
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) scale = Math.max(scale, Math.abs(a[i]![j]!));
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      if (Math.abs(a[i]![j]! - a[j]![i]!) > 1e-9 * Math.max(1, scale)) throw new RangeError(`matrix is not symmetric at (${i}, ${j})`);
    }
  }
  // v holds eigenvectors as columns while rotating.
  const v = Array.from({ length: n }, (_, i) => Float64Array.from({ length: n }, (_, j) => (i === j ? 1 : 0)));
  for (let sweep = 0; sweep < MAX_JACOBI_SWEEPS; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p]![q]! ** 2;
    if (off <= (1e-30 * scale * scale) || off === 0) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p]![q]!;
        if (apq === 0) continue;
        const app = a[p]![p]!;
        const aqq = a[q]![q]!;
        // Rotation angle that zeroes a[p][q] (Numerical Recipes' stable form).
        const theta = (aqq - app) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k]![p]!;
          const akq = a[k]![q]!;
          a[k]![p] = c * akp - s * akq;
          a[k]![q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p]![k]!;
          const aqk = a[q]![k]!;
          a[p]![k] = c * apk - s * aqk;
          a[q]![k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k]![p]!;
          const vkq = v[k]![q]!;
          v[k]![p] = c * vkp - s * vkq;
          v[k]![q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: n }, (_, j) => j).sort((x, y) => a[y]![y]! - a[x]![x]! || x - y);
  const values = order.map((j) => a[j]![j]!);
  const vectors = order.map((j) => {
    const vector = v.map((row) => row[j]!);
    let largest = 0;
    for (const x of vector) if (Math.abs(x) > Math.abs(largest)) largest = x;
    return largest < 0 ? vector.map((x) => -x) : vector;
  });
  return { values, vectors };
}

/**
 * Covariance (population, divided by the row count) of rows around `mean` (default the
 * rows' own mean). Rows are flat float arrays of length n.
 */
export function covarianceMatrix(rows: readonly ArrayLike<number>[], n: number, mean?: ArrayLike<number>): number[][] {
  if (rows.length === 0) throw new RangeError('covariance of no rows');
  const mu = mean === undefined ? columnMeans(rows, n) : Float64Array.from({ length: n }, (_, i) => mean[i]!);
  const sums = Array.from({ length: n }, () => new Float64Array(n));
  const d = new Float64Array(n);
  for (const row of rows) {
    for (let i = 0; i < n; i++) d[i] = row[i]! - mu[i]!;
    for (let i = 0; i < n; i++) {
      const di = d[i]!;
      const target = sums[i]!;
      for (let j = i; j < n; j++) target[j] = target[j]! + di * d[j]!;
    }
  }
  const cov = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      const value = sums[i]![j]! / rows.length;
      cov[i]![j] = value;
      cov[j]![i] = value;
    }
  }
  return cov;
}

/** Mean of each of the n columns of `rows` (float64). */
export function columnMeans(rows: readonly ArrayLike<number>[], n: number): Float64Array {
  const mean = new Float64Array(n);
  for (const row of rows) for (let i = 0; i < n; i++) mean[i] = mean[i]! + row[i]!;
  for (let i = 0; i < n; i++) mean[i] = mean[i]! / rows.length;
  return mean;
}

/** Fewest leading components whose eigenvalues hold at least `ratio` of the total variance. */
export function chooseComponentCount(values: readonly number[], ratio: number): number {
  const total = values.reduce((s, x) => s + Math.max(0, x), 0);
  if (total <= 0) return 0;
  let sum = 0;
  for (let k = 0; k < values.length; k++) {
    sum += Math.max(0, values[k]!);
    if (sum / total >= ratio - 1e-12) return k + 1;
  }
  return values.length;
}

/**
 * How the principal directions count in the score.
 * - `projection`: components are the k unit eigenvectors; the score is the classic squared
 *   prediction error (SPE), blind to how far a row moved *along* the principal directions.
 * - `balanced`: component j is scaled by sqrt(1 - sqrt(r / lambda_j)), r the mean residual
 *   eigenvalue. The same graph then scores
 *   (1/n) * (sum_{j<=k} (r / lambda_j) z_j^2 + sum_{j>k} z_j^2), z_j = x . v_j:
 *   r times the combined index T^2 + SPE / r (Hotelling's T^2 over the k principal
 *   directions plus the residual in units of its mean eigenvalue), so a normal row contributes
 *   about as much along each principal direction as along each residual one, and an anomaly
 *   that only moves a row along a principal direction (a stuck sensor's spread dropping to 0)
 *   still scores high. On the simulator's evaluation hour SPE alone caught 0 of 16 stuck
 *   sensors, the balanced score 16 of 16.
 */
export const ComponentWeighting = {
  projection: 'projection',
  balanced: 'balanced',
} as const;
export type ComponentWeighting = (typeof ComponentWeighting)[keyof typeof ComponentWeighting];

/**
 * The scoring components (W^T, k rows of n) from an eigen-decomposition of the normalised
 * feature covariance, for `buildPcaModel` and `scorePcaReference`.
 */
export function scoringComponents(eigen: EigenDecomposition, k: number, weighting: ComponentWeighting): number[][] {
  const n = eigen.values.length;
  if (k < 0 || k > n) throw new RangeError(`k must be within 0..${n}`);
  const principal = eigen.vectors.slice(0, k);
  if (weighting === 'projection') return principal.map((v) => [...v]);
  const residual = eigen.values.slice(k).map((x) => Math.max(0, x));
  // With no residual direction, the smallest principal eigenvalue sets the scale instead.
  const reference = residual.length > 0 ? residual.reduce((s, x) => s + x, 0) / residual.length : Math.max(0, eigen.values[n - 1] ?? 0);
  return principal.map((vector, j) => {
    const lambda = eigen.values[j]!;
    const keep = lambda > 0 ? Math.max(0, 1 - Math.sqrt(Math.min(1, reference / lambda))) : 0;
    const factor = Math.sqrt(keep);
    return vector.map((x) => x * factor);
  });
}
