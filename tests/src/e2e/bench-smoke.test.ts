// CI's smoke check of `npm run bench` (issue [bench]): every scenario still starts, runs and
// stops by itself, and every figure the results file promises is written. Tiny counts: the
// figures themselves mean nothing here and are not judged (no timing thresholds in tests).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { createTempDir, type TempDir } from '../harness/temp-dir.js';

const BENCH_MAIN = fileURLToPath(new URL('../../dist/bench/run.js', import.meta.url));

/** The figure names issues [bench] and [perf] fix for tests/bench/results/latest.json. */
const REQUIRED_FIGURES = [
  'loadgen.cpu_us_per_msg',
  'loadgen.event_loop_busy_max',
  'loadgen.second_process_gain',
  'ingest.qos1.msgs_per_s',
  'ingest.qos1.ratio_vs_aedes_raw',
  'ingest.qos1.ratio_vs_nats_mqtt_peer',
  'ingest.puback_p99_ms_at_10k',
  'aedes_raw.qos1.msgs_per_s',
  'peer.nats_mqtt.msgs_per_s',
  'realistic_client.ingest.qos1.msgs_per_s',
  'e2e.msgs_per_s',
  'e2e.ratio_vs_nats_mqtt_peer',
  'e2e.ratio_vs_mosquitto_bridge',
  'e2e.latency_p99_ms_at_5k',
  'cp.cpu_us_per_record',
  'drain.records_per_s',
  'inference.latency_p99_ms_at_10k',
  'inference.summaries.latency_p99_ms_at_10k',
  'inference.every-score.latency_p99_ms_at_10k',
  'memory.agent_rss_mb_at_10k',
  'memory.agent_rss_mb_peak',
  'memory.inference_pss_mb',
  'memory.swap_growth_pct',
] as const;

let dir: TempDir | undefined;
afterEach(async () => {
  await dir?.remove();
  dir = undefined;
});

describe('npm run bench -- --smoke', () => {
  it('runs every scenario to completion and writes every figure, the machine facts and the chart', async () => {
    expect(existsSync(BENCH_MAIN), `${BENCH_MAIN} missing: run npm run build first`).toBe(true);
    dir = await createTempDir('outpost-bench-smoke-');
    const child = spawn(process.execPath, [BENCH_MAIN, '--smoke', '--out', dir.path], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    expect(code, output.slice(-4000)).toBe(0);

    const results = JSON.parse(await readFile(join(dir.path, 'latest.json'), 'utf8')) as Record<string, unknown>;
    expect(results['mode']).toBe('smoke');
    expect(Number.isNaN(Date.parse(String(results['time'])))).toBe(false);
    expect(results['machine']).toMatchObject({ cores: expect.any(Number), node: process.version });
    const missing = REQUIRED_FIGURES.filter((name) => typeof results[name] !== 'number' || !Number.isFinite(results[name]));
    expect(missing, 'figures missing or not finite').toEqual([]);
    expect(typeof results['loadgen.not_the_bottleneck']).toBe('boolean');

    const chart = await readFile(join(dir.path, 'throughput.svg'), 'utf8');
    expect(chart).toMatch(/^<svg /);
    for (const label of ['Outpost agent', 'nats-server MQTT', 'raw aedes', 'mosquitto']) expect(chart).toContain(label);
  }, 300_000);
});
