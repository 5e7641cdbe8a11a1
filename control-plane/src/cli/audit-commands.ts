// `outpostctl audit ls`: the audit log of mutating API calls (who published, created, steered,
// enrolled or revoked what, when, and how it ended), newest first, as GET /api/audit lists it.
import type { Command } from 'commander';
import { AuditListResponseSchema, DEFAULT_AUDIT_LIMIT, MAX_ANOMALIES_LIMIT, TOKEN_NAME_PATTERN, type AuditListResponse } from '@outpost/shared';
import { expectBody, parsePositiveInt, usage, type CommandKit } from './command-kit.js';
import type { Style } from './style.js';
import { formatTable, type Cell } from './table.js';
import { formatTime, parseSince } from './time.js';

const NONE = '-';

/** `audit ls`: one row per entry, newest first. */
export function formatAuditList(body: AuditListResponse, style: Style): string {
  if (body.entries.length === 0) return 'No audit entries.\n';
  const outcome = (e: AuditListResponse['entries'][number]): Cell => {
    const text = e.outcome.code === undefined ? String(e.outcome.status) : `${e.outcome.status} ${e.outcome.code}`;
    return { text, style: e.outcome.status >= 500 ? style.red : e.outcome.status >= 400 ? style.yellow : style.green };
  };
  return formatTable(
    [{ header: 'TIME' }, { header: 'ACTOR' }, { header: 'ROLE' }, { header: 'ACTION' }, { header: 'OUTCOME' }, { header: 'DETAIL' }],
    body.entries.map((e) => [formatTime(e.atMs), e.actor, e.role ?? NONE, e.action, outcome(e), e.detail ?? NONE]),
    { header: style.bold },
  );
}

export function registerAuditCommands(program: Command, kit: CommandKit): void {
  const { out, printJson, context, io } = kit;
  const audit = program.command('audit').description('the audit log of mutating calls (any token may read it)');
  audit
    .command('ls')
    .description('list audit entries, newest first: who changed what, when, and how it ended (refused attempts included)')
    .option('--since <when>', 'a duration back from now (90s, 15m, 1h, 2d), epoch ms or an ISO 8601 time (default: no bound)')
    .option('--actor <name>', 'only calls of this token name (or anonymous: no token accepted, or auth off)')
    .option('--limit <n>', `at most this many (1 to ${MAX_ANOMALIES_LIMIT})`, String(DEFAULT_AUDIT_LIMIT))
    .action(async (opts: { since?: string; actor?: string; limit: string }, command: Command) => {
      const query = new URLSearchParams({ limit: String(parsePositiveInt('--limit', opts.limit, MAX_ANOMALIES_LIMIT)) });
      if (opts.since !== undefined) {
        const since = parseSince(opts.since, io.now());
        if (since === undefined) throw usage(`--since: ${JSON.stringify(opts.since)} is not a duration (1h), epoch ms or an ISO 8601 time`);
        query.set('since', String(since));
      }
      if (opts.actor !== undefined) {
        if (!TOKEN_NAME_PATTERN.test(opts.actor)) throw usage(`--actor: ${JSON.stringify(opts.actor)} is not a token name (1 to 64 letters, digits or _.@-)`);
        query.set('actor', opts.actor);
      }
      const c = context(command);
      const body = await c.api.get(`/api/audit?${query.toString()}`);
      if (c.json) return printJson(body);
      out(formatAuditList(expectBody(AuditListResponseSchema, body, 'audit ls'), c.style));
    });
}
