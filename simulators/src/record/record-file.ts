import { createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import type { ResolvedScenario } from '../scenario/resolve-scenario.js';
import { assertBounded, generateTraffic } from '../generate/traffic.js';

/** Lines buffered before one write: fewer, larger writes keep recording I/O-cheap. */
const LINES_PER_WRITE = 2_000;

/**
 * Where ground truth goes when recording without `--truth`: the record file's name with a
 * trailing `.jsonl` replaced by `.truth.jsonl` (`train.jsonl` -> `train.truth.jsonl`), or
 * `.truth.jsonl` appended to any other name.
 */
export function defaultTruthFile(recordFile: string): string {
  return recordFile.endsWith('.jsonl') ? `${recordFile.slice(0, -'.jsonl'.length)}.truth.jsonl` : `${recordFile}.truth.jsonl`;
}

export interface RecordSummary {
  mode: 'record';
  scenario: string;
  seed: string;
  recordFile: string;
  truthFile: string;
  devices: number;
  messages: number;
  malformed: number;
  oversize: number;
  episodes: number;
  /** Simulated time covered, first to last send (epoch ms). */
  firstTs: number | undefined;
  lastTs: number | undefined;
  bytes: number;
  elapsedMs: number;
}

function openWriter(file: string) {
  const stream: WriteStream = createWriteStream(file, { encoding: 'utf8' });
  const failed = once(stream, 'error').then(([error]) => Promise.reject(error as Error));
  failed.catch(() => {}); // observed in write()/close(); never an unhandled rejection
  let pending: string[] = [];
  let bytes = 0;
  const flush = async (): Promise<void> => {
    if (pending.length === 0) return;
    const chunk = `${pending.join('\n')}\n`;
    pending = [];
    bytes += Buffer.byteLength(chunk);
    if (!stream.write(chunk)) await Promise.race([once(stream, 'drain'), failed]);
  };
  return {
    get bytes() {
      return bytes;
    },
    async write(line: string): Promise<void> {
      pending.push(line);
      if (pending.length >= LINES_PER_WRITE) await flush();
    },
    async close(): Promise<void> {
      await flush();
      stream.end();
      await Promise.race([once(stream, 'finish'), failed]);
    },
  };
}

/**
 * Generates a bounded scenario's traffic into a JSONL record file (one line per message, see
 * formatRecordLine) and its ground truth into a second JSONL file, as fast as the disk takes
 * it, in simulated time from the scenario's startTs. The same scenario and seed give
 * byte-identical files.
 *
 * @throws OutpostError SCENARIO_INVALID when the scenario has no end; a file system error as is.
 */
export async function recordScenario(scenario: ResolvedScenario, files: { recordFile: string; truthFile: string }, now: () => number = Date.now): Promise<RecordSummary> {
  const startedAt = now();
  assertBounded(scenario); // before any file is created
  const lines = generateTraffic(scenario);
  const record = openWriter(files.recordFile);
  const truth = openWriter(files.truthFile);
  const summary: RecordSummary = {
    mode: 'record',
    scenario: scenario.name,
    seed: scenario.seed,
    recordFile: files.recordFile,
    truthFile: files.truthFile,
    devices: scenario.devices.filter((d) => !d.badCredentials).length,
    messages: 0,
    malformed: 0,
    oversize: 0,
    episodes: 0,
    firstTs: undefined,
    lastTs: undefined,
    bytes: 0,
    elapsedMs: 0,
  };
  try {
    for (const item of lines) {
      if (item.kind === 'truth') {
        summary.episodes += 1;
        await truth.write(item.line);
        continue;
      }
      const { message } = item;
      summary.messages += 1;
      if (message.kind.type === 'malformed') summary.malformed += 1;
      if (message.kind.type === 'oversize') summary.oversize += 1;
      summary.firstTs ??= message.sentAtMs;
      summary.lastTs = message.sentAtMs;
      await record.write(item.line);
    }
  } catch (error) {
    await Promise.allSettled([record.close(), truth.close()]);
    throw error;
  }
  await record.close();
  await truth.close();
  summary.bytes = record.bytes;
  summary.elapsedMs = now() - startedAt;
  return summary;
}
