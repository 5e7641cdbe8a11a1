// The outbox database: opened read-only (a second connection beside a running agent's is fine:
// WAL gives each connection its own snapshot, and nothing here writes), its schema version and
// owner, SQLite's quick_check, and how full it is.
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DoctorCheckId, Lane, type AgentConfig } from '@outpost/shared';
import { SCHEMA_VERSION } from '../buffer/index.js';
import { openDatabase, type Database } from '../buffer/sqlite.js';
import { checkFail, checkOk, checkSkip, checkWarn, formatBytes, formatDuration, type DoctorStep } from './check.js';

const id = DoctorCheckId.outbox;

/** An outbox this full (of outbox.maxBytes) is a warning: at 100 % the oldest telemetry is evicted. */
export const DEFAULT_OUTBOX_WARN_FRACTION = 0.8;
/** quick_check lines shown at most. */
const MAX_PROBLEMS = 5;
/** A lock held by the running agent's commit is waited for this long, ms. */
const BUSY_TIMEOUT_MS = 5_000;

const SQLITE_CORRUPT = new Set(['SQLITE_CORRUPT', 'SQLITE_NOTADB']);

const moveAside = (path: string): string =>
  `stop the agent, move ${path} (and its -wal, -shm) aside and start it again: a new outbox starts with a new epoch; the records in the old file are lost unless recovered (sqlite3 ${path} .recover)`;

interface Inspection {
  schemaVersion: number;
  owner: string | undefined;
  problems: string[];
  records: Record<Lane, number>;
  bytes: number;
  oldestReceivedAtMs: number | undefined;
}

async function inspect(db: Database): Promise<Inspection> {
  await db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
  const schemaVersion = (await db.get<{ user_version: number }>('PRAGMA user_version'))?.user_version ?? 0;
  const problems = (await db.all<{ quick_check: string }>('PRAGMA quick_check')).map((r) => r.quick_check).filter((r) => r !== 'ok');
  const tables = new Set((await db.all<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'")).map((r) => r.name));
  const owner = tables.has('meta') ? (await db.get<{ agent_id: string }>('SELECT agent_id FROM meta WHERE id = 1'))?.agent_id : undefined;
  const records: Record<Lane, number> = { events: 0, telemetry: 0 };
  let bytes = 0;
  let oldestReceivedAtMs: number | undefined;
  for (const lane of [Lane.events, Lane.telemetry]) {
    if (!tables.has(lane)) continue;
    const row = await db.get<{ n: number; b: number; oldest: number | null }>(`SELECT COUNT(*) AS n, COALESCE(SUM(bytes), 0) AS b, MIN(received_at_ms) AS oldest FROM ${lane}`);
    records[lane] = row?.n ?? 0;
    bytes += row?.b ?? 0;
    if (row?.oldest != null) oldestReceivedAtMs = Math.min(oldestReceivedAtMs ?? row.oldest, row.oldest);
  }
  return { schemaVersion, owner, problems, records, bytes, oldestReceivedAtMs };
}

function judge(config: AgentConfig, path: string, fileBytes: number, found: Inspection, nowMs: number) {
  if (found.problems.length > 0) {
    return checkFail(id, {
      summary: `${path} fails SQLite's quick_check: ${found.problems.slice(0, MAX_PROBLEMS).join('; ')}`,
      remedy: moveAside(path),
      details: found.problems.slice(0, MAX_PROBLEMS),
    });
  }
  if (found.schemaVersion > SCHEMA_VERSION) {
    return checkFail(id, {
      summary: `${path} has outbox schema version ${found.schemaVersion}, written by a newer agent (this one knows up to ${SCHEMA_VERSION}): it will refuse to start`,
      remedy: 'install the newer agent again (a downgrade cannot read a newer outbox), or move the file aside to start a new one',
    });
  }
  if (found.owner !== undefined && found.owner !== config.agentId) {
    return checkFail(id, { summary: `${path} belongs to agent ${found.owner}, not ${config.agentId}: the agent will refuse to start`, remedy: 'give each agent its own dataDir, or move the file aside to re-provision this gateway' });
  }
  const total = found.records.events + found.records.telemetry;
  const fraction = found.bytes / config.outbox.maxBytes;
  const waiting = found.oldestReceivedAtMs === undefined ? '' : `, the oldest waiting ${formatDuration(Math.max(0, nowMs - found.oldestReceivedAtMs))}`;
  const migrate = found.schemaVersion < SCHEMA_VERSION ? ` (schema ${found.schemaVersion}: migrated to ${SCHEMA_VERSION} at the next start)` : '';
  const summary = `${path} passes quick_check${migrate}: ${total} records (${found.records.events} events, ${found.records.telemetry} telemetry), ${formatBytes(found.bytes)} of ${formatBytes(config.outbox.maxBytes)} (${(fraction * 100).toFixed(1)} %)${waiting}; file ${formatBytes(fileBytes)}`;
  if (fraction >= DEFAULT_OUTBOX_WARN_FRACTION) {
    return checkWarn(id, { summary, remedy: 'the uplink is behind or down (see the nats check): at 100 % the oldest telemetry is evicted (counted, reported); raise outbox.maxBytes if the disk allows' });
  }
  return checkOk(id, summary);
}

export const outboxCheck: DoctorStep = {
  id,
  async run(ctx) {
    const config = ctx.config;
    if (config === undefined) return checkSkip(id, 'not checked: the config is invalid');
    const path = join(config.dataDir, ctx.env.outboxFileName);
    let fileBytes: number;
    try {
      fileBytes = (await stat(path)).size + (await stat(`${path}-wal`).then((s) => s.size, () => 0));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return checkOk(id, `no outbox yet at ${path}: the agent creates it at its first start`);
      return checkFail(id, { summary: `${path} cannot be read: ${(error as Error).message}`, remedy: "give the agent's user access to the data dir" });
    }
    let db: Database | undefined;
    try {
      db = await openDatabase(path, { readOnly: true });
      return judge(config, path, fileBytes, await inspect(db), ctx.env.now());
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code !== undefined && SQLITE_CORRUPT.has(code)) return checkFail(id, { summary: `${path} is not a readable SQLite database (${code}): ${(error as Error).message}`, remedy: moveAside(path) });
      if (code === 'SQLITE_BUSY') return checkWarn(id, { summary: `${path} stayed locked for ${BUSY_TIMEOUT_MS} ms (${code})`, remedy: 'run the doctor again; if it stays locked, see what else holds it (fuser)' });
      return checkFail(id, {
        summary: `${path} cannot be opened read-only: ${code ?? ''} ${(error as Error).message}`.replace(/\s+/g, ' '),
        remedy: "SQLite needs to create the -shm file beside a WAL database it reads: make the data dir writable for the agent's user (see the data-dir check)",
      });
    } finally {
      await db?.close().catch(() => undefined);
    }
  },
};
