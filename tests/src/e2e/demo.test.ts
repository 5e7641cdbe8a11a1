import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentListResponseSchema, DeviceListResponseSchema } from '@outpost/shared';
import { isStillRunning, listDescendants } from '../harness/process-tree.js';
import { createTempDir, type TempDir } from '../harness/temp-dir.js';
import { spawnOwned, waitFor, type OwnedProcess } from '../harness/wait.js';

const DEMO_MAIN = fileURLToPath(new URL('../../dist/demo/main.js', import.meta.url));
const DEVICES = 20;

interface DemoReady {
  event: 'demo-ready';
  dashboardUrl: string;
  apiUrl: string;
  token: string;
  natsUrl: string;
  agents: { agentId: string; mqttUrl: string; labels: Record<string, string>; devices: string[] }[];
  device: { username: string; password: string };
  pid: number;
}

let dir: TempDir | undefined;
let demo: OwnedProcess | undefined;
afterEach(async () => {
  await demo?.kill();
  demo = undefined;
  await dir?.remove();
});

/** GET a JSON API path with the operator token the demo printed. */
async function getJson(url: string, token: string): Promise<unknown> {
  const response = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  if (!response.ok) throw new Error(`${url} answered ${response.status}: ${await response.text()}`);
  return response.json();
}

describe('npm run demo', () => {
  it(`starts the stack, delivers telemetry of all ${DEVICES} devices to the control plane, and stops cleanly on SIGINT`, async () => {
    expect(existsSync(DEMO_MAIN), `${DEMO_MAIN} missing: run npm run build first`).toBe(true);
    dir = await createTempDir('outpost-demo-e2e-');
    demo = await spawnOwned(process.execPath, [DEMO_MAIN, '--devices', String(DEVICES), '--http-port', '0', '--data-dir', join(dir.path, 'demo')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const { child } = demo;
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));

    const ready = await new Promise<DemoReady>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no demo-ready line within 120 s; stderr:\n${stderr}`)), 120_000);
      createInterface({ input: child.stdout! }).on('line', (line) => {
        if (!line.startsWith('{')) return;
        const entry = JSON.parse(line) as { event?: string };
        if (entry.event === 'demo-ready') {
          clearTimeout(timer);
          resolve(entry as DemoReady);
        }
      });
      void exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`demo exited before ready (code ${code}, signal ${signal}); stderr:\n${stderr}`));
      });
    });
    expect(ready.agents).toHaveLength(3);
    expect(new Set(ready.agents.map((a) => JSON.stringify(a.labels))).size).toBe(3);
    expect(new Set(ready.agents.map((a) => a.mqttUrl)).size).toBe(3);
    for (const a of ready.agents) expect(a.mqttUrl).not.toMatch(/:1883$/);
    expect(ready.natsUrl).not.toMatch(/:4222$/);
    expect(ready.device.password.length).toBeGreaterThan(8);
    expect((await fetch(ready.dashboardUrl)).status).toBe(200);
    // The API is closed to anyone without the demo's operator token.
    expect((await fetch(`${ready.apiUrl}/agents`)).status).toBe(401);
    expect(new URL(ready.dashboardUrl).hash).toBe(`#token=${ready.token}`);

    // Where the operator looks: every device of every agent, with telemetry received.
    const expected = Array.from({ length: DEVICES }, (_, i) => `dev-${String(i + 1).padStart(4, '0')}`);
    const seen = await waitFor(
      async () => {
        const { agents } = AgentListResponseSchema.parse(await getJson(`${ready.apiUrl}/agents`, ready.token));
        const received = new Set<string>();
        for (const agent of agents) {
          const { devices } = DeviceListResponseSchema.parse(await getJson(`${ready.apiUrl}/agents/${agent.agentId}/devices`, ready.token));
          for (const d of devices) if (d.received > 0) received.add(d.deviceId);
        }
        return expected.every((id) => received.has(id)) ? received : undefined;
      },
      { what: `telemetry from all ${DEVICES} simulated devices in the control-plane API`, timeoutMs: 120_000, intervalMs: 500 },
    );
    expect([...seen].filter((id) => id.startsWith('dev-')).sort()).toEqual(expected);

    const children = listDescendants(child.pid!);
    // nats-server, the control plane, 3 agents, 3 simulators.
    expect(children.filter((p) => p.ppid === child.pid).length).toBeGreaterThanOrEqual(8);
    child.kill('SIGINT');
    expect(await exited, stderr).toEqual({ code: 0, signal: null });
    const left = children.filter(isStillRunning);
    expect(left.map((p) => `${p.pid} ${p.command}`)).toEqual([]);
    expect(stderr).toContain('demo: stopped');
  });
});
