/**
 * Seeded randomness for tests: every random choice a test makes (where to kill -9, after how
 * many batches to crash) comes from a stream of the simulators' seeded generator, so a failure
 * can be run again exactly. fast-check properties print their own seed.
 */
import { randomInt } from 'node:crypto';
import { onTestFailed } from 'vitest';
import { createRng, type Rng } from '@outpost/simulators';

/** Set it to repeat a run: `OUTPOST_TEST_SEED=123 npx vitest run tests/src/e2e/kill9-ingest.test.ts`. */
export const TEST_SEED_ENV = 'OUTPOST_TEST_SEED';

/** An integer seed from environment variable `name`; `fallback()` when it is unset or empty. */
export function seedFromEnv(name: string, fallback: () => number): number {
  const value = process.env[name];
  if (value === undefined || value === '') return fallback();
  const seed = Number(value);
  if (!Number.isSafeInteger(seed)) throw new Error(`${name} must be an integer, got ${value}`);
  return seed;
}

let processSeed: number | undefined;

/** The seed of this test file's run: OUTPOST_TEST_SEED, or one chosen at random once. */
export function testSeed(): number {
  processSeed ??= seedFromEnv(TEST_SEED_ENV, () => randomInt(2 ** 31));
  return processSeed;
}

/**
 * A random stream for the running test, drawn from `testSeed()` and named by `purpose` (streams of
 * different purposes are independent). Call it inside the test: if the test fails, its error
 * messages end with the seed and the variable that repeats it, and the same line goes to stderr.
 */
export function seededRandom(purpose: string): Rng {
  const seed = testSeed();
  const note = `random choices (${purpose}) from seed ${seed}: repeat with ${TEST_SEED_ENV}=${seed}`;
  onTestFailed(({ task }) => {
    for (const error of task.result?.errors ?? []) error.message = `${error.message}\n${note}`;
    console.error(note);
  });
  return createRng(seed, purpose);
}
