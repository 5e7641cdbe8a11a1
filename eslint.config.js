// Lint enforces the architecture: package boundaries (DESIGN section 1) and one adapter per
// third-party SDK (STYLE "Shape"): a file, or a folder where a package's adapter for an SDK
// needs more than one file; plus promise hygiene with type information.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// Each SDK may be imported only by its adapters, one per package: a file, or a folder (the glob
// `folder/**/*.ts`) where the adapter needs more than one file.
const ADAPTERS = [
  { sdk: 'aedes', files: ['agent/src/broker/embedded-broker.ts'] },
  { sdk: 'sqlite3', files: ['agent/src/buffer/sqlite.ts'] },
  { sdk: 'mqtt', files: ['agent/src/broker/mqtt-bridge.ts', 'simulators/src/transport/mqtt-transport.ts'] },
  { sdk: 'onnxruntime-node', files: ['agent/src/inference/onnx-session.ts', 'models/src/onnx/onnx-session.ts'] },
  { sdk: 'onnx-proto', files: ['models/src/onnx/onnx-writer.ts', 'agent/src/inference/onnx-model-check.ts'] },
  { sdk: '@nats-io/*', files: ['agent/src/uplink/nats-transport.ts', 'control-plane/src/nats/adapter/**/*.ts'] },
  { sdk: 'fastify', files: ['agent/src/http/http-server.ts', 'control-plane/src/api/http-server.ts'] },
  { sdk: '@fastify/*', files: ['control-plane/src/api/http-server.ts'] },
];

/** An adapter folder's glob shown as the folder: `control-plane/src/nats/adapter/`. */
const shownPath = (pattern) => pattern.replace(/\*\*\/\*\.ts$/, '');

function sdkRestrictions(exceptFile) {
  return ADAPTERS.filter((a) => !a.files.includes(exceptFile)).map((a) => ({
    group: [a.sdk],
    message: `${a.sdk} is imported only in its adapter (${a.files.map(shownPath).join(', ') || 'none yet'}); use the interface it exports.`,
  }));
}

const boundary = (pkg, forbidden) =>
  forbidden.map((other) => ({
    group: [`@outpost/${other}`, `@outpost/${other}/*`, `../../${other}/*`, `../../../${other}/*`],
    message: `${pkg} must not depend on ${other} (DESIGN section 1: shared <- agent, control-plane, models, simulators <- tests).`,
  }));

const restrict = (patterns) => ({ 'no-restricted-imports': ['error', { patterns }] });

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', 'coverage/**', '**/*.js', '**/*.d.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts', '**/*.tsx'],
    languageOptions: { parserOptions: { project: ['./tsconfig.check.json'], tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-console': ['error', { allow: ['warn', 'error'] }],
    },
  },
  { files: ['shared/src/**/*.ts'], rules: restrict([...boundary('shared', ['agent', 'control-plane', 'models', 'simulators', 'tests']), ...sdkRestrictions()]) },
  ...['agent', 'control-plane', 'models', 'simulators'].map((pkg) => ({
    files: [`${pkg}/src/**/*.ts`],
    ignores: ADAPTERS.flatMap((a) => a.files),
    rules: restrict([...boundary(pkg, ['agent', 'control-plane', 'models', 'simulators', 'tests'].filter((p) => p !== pkg)), ...sdkRestrictions()]),
  })),
  ...ADAPTERS.flatMap((a) => a.files).map((file) => ({
    files: [file],
    rules: restrict([...boundary(file.split('/')[0], ['agent', 'control-plane', 'models', 'simulators', 'tests'].filter((p) => p !== file.split('/')[0])), ...sdkRestrictions(file)]),
  })),
  // The dashboard runs in the browser: no Node built-ins, no SDK, and of our packages types
  // only (a type import is erased, so the bundle carries no zod).
  {
    files: ['control-plane/dashboard/src/**/*.{ts,tsx}'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['node:*'], message: 'the dashboard runs in a browser.' },
            // Exceptions: the shared backoff and SSE parser, pure modules without dependencies.
            { regex: '^@outpost/(?!shared/(backoff|sse-parser)$)', allowTypeImports: true, message: 'the dashboard imports our packages as types only (import type), but @outpost/shared/backoff and @outpost/shared/sse-parser.' },
            { group: ['../../../*/src/*'], allowTypeImports: true, message: 'the dashboard imports our packages as types only (import type).' },
            { group: ['zod'], message: 'the dashboard bundle carries no zod; import the shared types.' },
            ...sdkRestrictions(),
          ],
        },
      ],
    },
  },
  // Tests, benches and the harness drive real clients (mqtt.js as a device, @nats-io/* as an
  // agent publishing hand-built batches) and print figures: no SDK restriction there.
  { files: ['tests/src/**/*.ts'], rules: { 'no-console': 'off' } },
  // The demo (`npm run demo`) and the bench (`npm run bench`) are product, not tests: they run
  // the real processes through the harness's process helpers, and never lean on a test runner
  // or on a test file.
  {
    files: ['tests/src/demo/**/*.ts', 'tests/src/bench/**/*.ts'],
    ignores: ['**/*.test.ts'],
    rules: restrict([
      { group: ['vitest', 'vitest/*', '@vitest/*'], message: 'the demo and the bench run without a test runner.' },
      { group: ['**/*.test.js', '../e2e/*', '../integration/*'], message: 'the demo and the bench import no test file; shared helpers live in tests/src/harness.' },
      { group: ['../demo/*'], message: 'the bench and the demo stay apart; shared helpers live in tests/src/harness.' },
    ]),
  },
);
