// The doctor's report for people (one line per check, its remedy under it) and its exit code
// for scripts.
import { DOCTOR_CHECK_TITLES, DoctorStatus, type DoctorOverall, type DoctorReport, type DoctorStatus as Status } from '@outpost/shared';

/**
 * Exit codes of `outpost-agent doctor`: 0 every check ok (or skipped), 1 a warning, 2 a check
 * failed. A config that cannot be read is a failed check too (2), as it is for the agent itself.
 */
export const DoctorExitCode = { ok: 0, warn: 1, fail: 2 } as const satisfies Record<DoctorOverall, number>;
export type DoctorExitCode = (typeof DoctorExitCode)[keyof typeof DoctorExitCode];

export function doctorExitCode(report: Pick<DoctorReport, 'status'>): DoctorExitCode {
  return DoctorExitCode[report.status];
}

const MARKS: Readonly<Record<Status, string>> = { ok: 'ok', warn: 'WARN', fail: 'FAIL', skip: 'skip' };
const COLOURS: Readonly<Record<Status, [string, string]>> = {
  ok: ['\u001b[32m', '\u001b[39m'],
  warn: ['\u001b[33m', '\u001b[39m'],
  fail: ['\u001b[31m', '\u001b[39m'],
  skip: ['\u001b[2m', '\u001b[22m'],
};

/** The report as lines of text: a header, each check (status, what, summary), its remedy and details under it. */
export function formatDoctorReport(report: DoctorReport, options: { colour?: boolean } = {}): string {
  const paint = (status: Status, text: string): string => (options.colour === true ? `${COLOURS[status][0]}${text}${COLOURS[status][1]}` : text);
  const counts = Object.values(DoctorStatus)
    .map((status) => [status, report.checks.filter((c) => c.status === status).length] as const)
    .filter(([, n]) => n > 0)
    .map(([status, n]) => `${n} ${status}`)
    .join(', ');
  const who = report.agentId === undefined ? '' : ` agent ${report.agentId}`;
  const where = report.origin === 'agent' ? ' (inside the running agent)' : '';
  const lines = [`doctor${who}${where}: ${paint(report.status, report.status.toUpperCase())} (${counts}); config ${report.configFile ?? '-'}`];
  const titleWidth = Math.max(...report.checks.map((c) => DOCTOR_CHECK_TITLES[c.id].length));
  for (const check of report.checks) {
    lines.push(`  ${paint(check.status, MARKS[check.status].padEnd(4))}  ${DOCTOR_CHECK_TITLES[check.id].padEnd(titleWidth)}  ${check.summary}`);
    const indent = ' '.repeat(10 + titleWidth);
    if (check.status !== DoctorStatus.ok) for (const detail of check.details ?? []) lines.push(`${indent}- ${detail}`);
    if (check.remedy !== undefined) lines.push(`${indent}-> ${check.remedy}`);
  }
  return `${lines.join('\n')}\n`;
}
