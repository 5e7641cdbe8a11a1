import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createRecordStats, parseRecordLine, readRecordFile, type TelemetryRecord } from './records.js';

const GOOD = '{"ts":1000,"deviceId":"dev-1","topic":"devices/dev-1/telemetry","payload":{"ts":990,"seq":3,"metrics":{"temperature":21.5,"vibration":0.7}}}';

describe('parseRecordLine', () => {
  it('reads a telemetry line, taking ts and seq from the payload', () => {
    expect(parseRecordLine(GOOD)).toEqual({ type: 'telemetry', record: { deviceId: 'dev-1', ts: 990, seq: 3, metrics: { temperature: 21.5, vibration: 0.7 } } });
  });

  it('skips malformed, invalid and foreign lines with a reason, never throwing', () => {
    const cases: [string, string][] = [
      ['{"ts":1,"deviceId":"dev-1","topic":"devices/dev-1/telemetry","raw":"{not json"}', 'malformed'],
      ['not json at all', 'malformed'],
      ['42', 'malformed'],
      ['{"ts":1,"deviceId":"dev-1","topic":"devices/dev-1/telemetry","payload":{"ts":1,"metrics":{}}}', 'invalid-payload'],
      ['{"ts":1,"deviceId":"dev-1","topic":"devices/dev-1/telemetry","payload":{"ts":1,"metrics":{"t":"hot"}}}', 'invalid-payload'],
      ['{"ts":1,"deviceId":"dev-1","topic":"devices/dev-1/errors","payload":{"ts":1,"metrics":{"t":1}}}', 'not-telemetry'],
      ['{"ts":1,"deviceId":"dev-1","topic":"devices/dev-2/telemetry","payload":{"ts":1,"metrics":{"t":1}}}', 'not-telemetry'],
      ['{"ts":1,"topic":"devices/dev-1/telemetry","payload":{"ts":1,"metrics":{"t":1}}}', 'not-telemetry'],
    ];
    for (const [line, reason] of cases) expect(parseRecordLine(line), line).toEqual({ type: 'skipped', reason });
  });
});

describe('readRecordFile', () => {
  it('streams the valid telemetry in file order and counts what it skipped', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'outpost-records-'));
    try {
      const file = join(dir, 'r.jsonl');
      await writeFile(file, [GOOD, '', '{"ts":1,"deviceId":"dev-1","topic":"devices/dev-1/telemetry","raw":"x"}', GOOD.replace('"seq":3', '"seq":4')].join('\n'));
      const stats = createRecordStats();
      const records: TelemetryRecord[] = [];
      for await (const r of readRecordFile(file, stats)) records.push(r);
      expect(records.map((r) => r.seq)).toEqual([3, 4]);
      expect(stats).toEqual({ lines: 3, telemetry: 2, skipped: { malformed: 1, 'invalid-payload': 0, 'not-telemetry': 0 } });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
