import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// Tests run against the TypeScript sources of every workspace package; child processes
// (agents a test kills with SIGKILL) run the built JavaScript, so `npm test` builds first.
const alias = {
  // Before '@outpost/shared', which would also catch its subpath.
  '@outpost/shared/backoff': fileURLToPath(new URL('./shared/src/backoff.ts', import.meta.url)),
  '@outpost/shared/sse-parser': fileURLToPath(new URL('./shared/src/sse-parser.ts', import.meta.url)),
  '@outpost/shared/testing': fileURLToPath(new URL('./shared/src/testing/random.ts', import.meta.url)),
  '@outpost/shared': fileURLToPath(new URL('./shared/src/index.ts', import.meta.url)),
  '@outpost/agent': fileURLToPath(new URL('./agent/src/index.ts', import.meta.url)),
  '@outpost/control-plane': fileURLToPath(new URL('./control-plane/src/index.ts', import.meta.url)),
  '@outpost/models': fileURLToPath(new URL('./models/src/index.ts', import.meta.url)),
  '@outpost/simulators': fileURLToPath(new URL('./simulators/src/index.ts', import.meta.url)),
};

export default defineConfig({
  resolve: { alias },
  test: {
    reporters: ['default', './tests/summary-reporter.ts'],
    projects: [
      {
        resolve: { alias },
        test: {
          name: 'unit',
          include: ['{shared,agent,control-plane,models,simulators}/src/**/*.test.ts', 'control-plane/dashboard/src/**/*.test.ts', 'tests/src/demo/**/*.test.ts'],
        },
      },
      {
        resolve: { alias },
        test: {
          name: 'integration',
          include: ['tests/src/integration/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        resolve: { alias },
        test: {
          name: 'e2e',
          include: ['tests/src/e2e/**/*.test.ts'],
          testTimeout: 300_000,
          hookTimeout: 60_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
