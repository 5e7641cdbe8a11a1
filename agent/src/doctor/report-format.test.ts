import { describe, expect, it } from 'vitest';
import { doctorOverall, DoctorReportSchema, type DoctorCheck, type DoctorReport } from '@outpost/shared';
import { doctorExitCode, formatDoctorReport } from './report-format.js';

const checks: DoctorCheck[] = [
  { id: 'config', status: 'ok', summary: '/etc/outpost/agent.yaml is valid' },
  { id: 'nats', status: 'fail', summary: 'cannot reach NATS at nats://10.0.0.1:4222: ECONNREFUSED', remedy: 'check that nats-server runs there' },
  { id: 'clock', status: 'skip', summary: 'not measured: needs a NATS connection (see the nats check)' },
  { id: 'certificates', status: 'warn', summary: 'NATS CA expires in 12 days', remedy: 'renew it before it expires', details: ['NATS CA CN=ca: expires in 12 days', 'MQTT CN=gw: valid until 2030'] },
];

const report = (of: DoctorCheck[]): DoctorReport =>
  DoctorReportSchema.parse({ agentId: 'gw-1', configFile: '/etc/outpost/agent.yaml', origin: 'local', agentVersion: '0.1.0', atMs: 0, status: doctorOverall(of), checks: of });

describe('the doctor report', () => {
  it('is as bad as its worst check: a skipped check counts for nothing (the check that made it skip says why)', () => {
    expect(doctorOverall(checks)).toBe('fail');
    expect(doctorOverall(checks.filter((c) => c.status !== 'fail'))).toBe('warn');
    expect(doctorOverall(checks.filter((c) => c.status === 'ok' || c.status === 'skip'))).toBe('ok');
  });

  it('exits 0 ok, 1 on a warning, 2 on a failure', () => {
    expect(doctorExitCode({ status: 'ok' })).toBe(0);
    expect(doctorExitCode({ status: 'warn' })).toBe(1);
    expect(doctorExitCode({ status: 'fail' })).toBe(2);
  });

  it('prints a header with the counts, one aligned line per check, details and the remedy under a check that is not ok', () => {
    expect(formatDoctorReport(report(checks))).toBe(
      [
        'doctor agent gw-1: FAIL (1 ok, 1 warn, 1 fail, 1 skip); config /etc/outpost/agent.yaml',
        '  ok    config file   /etc/outpost/agent.yaml is valid',
        '  FAIL  NATS uplink   cannot reach NATS at nats://10.0.0.1:4222: ECONNREFUSED',
        '                      -> check that nats-server runs there',
        '  skip  clock skew    not measured: needs a NATS connection (see the nats check)',
        '  WARN  certificates  NATS CA expires in 12 days',
        '                      - NATS CA CN=ca: expires in 12 days',
        '                      - MQTT CN=gw: valid until 2030',
        '                      -> renew it before it expires',
        '',
      ].join('\n'),
    );
  });

  it('colours the marks only when asked (a terminal), and says when the checks ran inside the agent', () => {
    const plain = formatDoctorReport(report(checks));
    expect(plain).not.toContain('\u001b[');
    const coloured = formatDoctorReport({ ...report(checks), origin: 'agent' }, { colour: true });
    expect(coloured).toContain('\u001b[31mFAIL\u001b[39m');
    expect(coloured.split('\n')[0]).toMatch(/^doctor agent gw-1 \(inside the running agent\): /);
  });
});
