// The built `outpostctl audit ls` against a control plane and a real nats-server: the audit log
// as a table and as JSON, its filters, and a viewer token refused on a change (exit code 4).
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditListResponseSchema, generateSigningKey } from '@outpost/shared';
import type { ControlPlane } from '@outpost/control-plane';
import { signedConstantModel, writeModelFiles } from '../harness/agent-process.js';
import { operatorTokenSha256, runOutpostctl, startInProcessControlPlane, testControlPlaneConfig, type CliRun } from '../harness/control-plane-process.js';
import { startNatsServer, type NatsServer } from '../harness/nats-server.js';
import { createTempDir, type TempDir } from '../harness/temp-dir.js';

const OPERATOR = { name: 'ops-carol', token: 'cli-audit-operator-token-P4t8' };
const VIEWER = { name: 'view-dan', token: 'cli-audit-viewer-token-W2m6' };
const key = generateSigningKey('cli-audit-key');

let server: NatsServer;
let cp: ControlPlane;
let dir: TempDir;
let url: string;
let manifestPath: string;

beforeAll(async () => {
  server = await startNatsServer();
  dir = await createTempDir('outpost-cli-audit-');
  cp = await startInProcessControlPlane(
    testControlPlaneConfig(server.url, {
      http: {
        host: '127.0.0.1',
        port: 0,
        dashboardDir: '/nonexistent',
        auth: {
          tokens: [
            { name: OPERATOR.name, sha256: operatorTokenSha256(OPERATOR.token), role: 'operator' },
            { name: VIEWER.name, sha256: operatorTokenSha256(VIEWER.token), role: 'viewer' },
          ],
        },
      },
    }),
    pino({ level: process.env['OUTPOST_TEST_LOG'] ?? 'silent' }),
  );
  url = `http://127.0.0.1:${cp.httpPort}`;
  const model = signedConstantModel(0.2, '2.0.0', key, { threshold: 0.5 });
  manifestPath = (await writeModelFiles(dir.path, 'constant-2.0.0', model.onnx, model.signed)).manifestPath;
}, 60_000);

afterAll(async () => {
  await cp?.close();
  await server?.stop();
  await dir?.remove();
});

function ctl(token: string, ...args: string[]): Promise<CliRun> {
  return runOutpostctl(args, { env: { OUTPOST_URL: url, OUTPOST_TOKEN: token } });
}

describe('outpostctl audit ls', () => {
  it('lists who changed what and how it ended, newest first; a viewer is refused on a change with exit code 4', async () => {
    const refused = await ctl(VIEWER.token, 'models', 'publish', manifestPath);
    expect([refused.code, refused.stderr]).toEqual([4, expect.stringMatching(/^outpostctl: FORBIDDEN: .*role operator.* \(give an operator token\)\n$/)]);
    const published = await ctl(OPERATOR.token, 'models', 'publish', manifestPath);
    expect(published.code, published.stderr).toBe(0);
    const missing = await ctl(OPERATOR.token, 'rollout', 'pause', 'r-missing');
    expect(missing.code).toBe(3);

    const table = await ctl(VIEWER.token, 'audit', 'ls');
    expect(table.code, table.stderr).toBe(0);
    const [header, ...rows] = table.stdout.trimEnd().split('\n');
    expect(header).toMatch(/^TIME +ACTOR +ROLE +ACTION +OUTCOME +DETAIL$/);
    expect(rows.map((r) => r.split(/ {2,}/).slice(1))).toEqual([
      [OPERATOR.name, 'operator', 'rollout.pause', '404 ROLLOUT_NOT_FOUND', 'rollout r-missing'],
      [OPERATOR.name, 'operator', 'model.publish', '201', 'constant@2.0.0'],
      [VIEWER.name, 'viewer', 'model.publish', '403 FORBIDDEN', 'constant@2.0.0'],
    ]);
    expect(rows.every((r) => /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z /.test(r))).toBe(true);

    const json = await ctl(VIEWER.token, '--json', 'audit', 'ls', '--actor', VIEWER.name, '--since', '1h');
    expect(json.code, json.stderr).toBe(0);
    expect(AuditListResponseSchema.parse(JSON.parse(json.stdout)).entries.map((e) => [e.actor, e.action, e.outcome])).toEqual([
      [VIEWER.name, 'model.publish', { status: 403, code: 'FORBIDDEN' }],
    ]);
    const one = await ctl(VIEWER.token, 'audit', 'ls', '--limit', '1');
    expect(one.stdout.trimEnd().split('\n')).toHaveLength(2);
    const later = await ctl(VIEWER.token, 'audit', 'ls', '--since', new Date(Date.now() + 60_000).toISOString());
    expect([later.code, later.stdout]).toEqual([0, 'No audit entries.\n']);
    // Nothing secret on the screen.
    for (const run of [refused, published, table, json]) {
      for (const token of [OPERATOR.token, VIEWER.token]) expect(run.stdout + run.stderr).not.toContain(token);
    }
  });

  it('refuses a bad filter before any request (exit code 2), and no token (exit code 4)', async () => {
    expect((await ctl(VIEWER.token, 'audit', 'ls', '--actor', 'no spaces')).code).toBe(2);
    expect((await ctl(VIEWER.token, 'audit', 'ls', '--since', 'yesterday')).code).toBe(2);
    expect((await ctl(VIEWER.token, 'audit', 'ls', '--limit', '0')).code).toBe(2);
    const anonymous = await runOutpostctl(['audit', 'ls'], { env: { OUTPOST_URL: url } });
    expect([anonymous.code, anonymous.stderr]).toEqual([4, expect.stringContaining('AUTH_REQUIRED')]);
  });
});
