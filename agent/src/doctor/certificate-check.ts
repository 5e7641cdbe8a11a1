// Certificates the agent uses: the MQTT broker's TLS certificate (and the CA it checks device
// certificates with), the NATS CA from the enrolment bundle or uplink.tls, a NATS client
// certificate, the bridge's CA. Each must be valid now and for DEFAULT_EXPIRY_WARNING_DAYS more
// by the doctor's clock; a certificate with its key must match it.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { DoctorCheckId } from '@outpost/shared';
import { checkFail, checkOk, checkSkip, checkWarn, DEFAULT_EXPIRY_WARNING_DAYS, formatDuration, type DoctorStep } from './check.js';

const id = DoctorCheckId.certificates;

/** One PEM the agent uses: where it comes from, its text (or why it cannot be read), and the key that goes with it. */
interface PemSource {
  what: string;
  pem: Promise<string>;
  keyPem?: Promise<string>;
}

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

type Verdict = { level: 'ok' | 'warn' | 'fail'; line: string };

function subjectName(cert: X509Certificate): string {
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(cert.subject)?.[1];
  return cn === undefined ? cert.subject.replace(/\n/g, ', ') : `CN=${cn}`;
}

async function judgeSource(source: PemSource, nowMs: number): Promise<Verdict[]> {
  let pem: string;
  try {
    pem = await source.pem;
  } catch (error) {
    return [{ level: 'fail', line: `${source.what}: cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})` }];
  }
  const blocks = pem.match(PEM_BLOCK) ?? [];
  if (blocks.length === 0) return [{ level: 'fail', line: `${source.what}: no PEM certificate in it` }];
  const verdicts: Verdict[] = [];
  const warnBeforeMs = DEFAULT_EXPIRY_WARNING_DAYS * 86_400_000;
  for (const [i, block] of blocks.entries()) {
    const what = blocks.length === 1 ? source.what : `${source.what} #${i + 1}`;
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(block);
    } catch (error) {
      verdicts.push({ level: 'fail', line: `${what}: not a certificate (${(error as Error).message})` });
      continue;
    }
    const name = subjectName(cert);
    const fromMs = Date.parse(cert.validFrom);
    const toMs = Date.parse(cert.validTo);
    if (toMs < nowMs) verdicts.push({ level: 'fail', line: `${what} ${name}: expired ${formatDuration(nowMs - toMs)} ago (${cert.validTo})` });
    else if (fromMs > nowMs) verdicts.push({ level: 'fail', line: `${what} ${name}: not valid before ${cert.validFrom} (a wrong clock? see the clock check)` });
    else if (toMs - nowMs < warnBeforeMs) verdicts.push({ level: 'warn', line: `${what} ${name}: expires in ${formatDuration(toMs - nowMs)} (${cert.validTo})` });
    else verdicts.push({ level: 'ok', line: `${what} ${name}: valid until ${cert.validTo}` });
    if (i === 0 && source.keyPem !== undefined) {
      try {
        if (!cert.checkPrivateKey(createPrivateKey(await source.keyPem))) verdicts.push({ level: 'fail', line: `${what}: its key file holds another key` });
      } catch (error) {
        verdicts.push({ level: 'fail', line: `${what}: its key cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})` });
      }
    }
  }
  return verdicts;
}

/** Promises that are read later; a rejection is handled there, never unhandled meanwhile. */
function later(text: Promise<string>): Promise<string> {
  text.catch(() => undefined);
  return text;
}

export const certificateCheck: DoctorStep = {
  id,
  async run(ctx) {
    const { config, credentials } = ctx;
    if (config === undefined) return checkSkip(id, 'not checked: the config is invalid');
    const file = (path: string): Promise<string> => later(readFile(path, 'utf8'));
    const sources: PemSource[] = [];
    if (config.broker.mode === 'embedded' && config.broker.tls !== undefined) {
      const tls = config.broker.tls;
      sources.push({ what: `MQTT server certificate ${tls.certFile}`, pem: file(tls.certFile), keyPem: file(tls.keyFile) });
      if (tls.caFile !== undefined) sources.push({ what: `MQTT device CA ${tls.caFile}`, pem: file(tls.caFile) });
    }
    if (config.broker.mode === 'bridge' && config.broker.caFile !== undefined) sources.push({ what: `site broker CA ${config.broker.caFile}`, pem: file(config.broker.caFile) });
    const uplinkTls = config.uplink?.tls;
    if (uplinkTls?.caFile !== undefined) sources.push({ what: `NATS CA ${uplinkTls.caFile}`, pem: file(uplinkTls.caFile) });
    else if (credentials?.tls?.ca !== undefined) sources.push({ what: `NATS CA from the enrolment bundle ${config.uplink?.enrollmentFile ?? ''}`.trim(), pem: Promise.resolve(credentials.tls.ca) });
    if (uplinkTls?.certFile !== undefined) {
      sources.push({ what: `NATS client certificate ${uplinkTls.certFile}`, pem: file(uplinkTls.certFile), ...(uplinkTls.keyFile === undefined ? {} : { keyPem: file(uplinkTls.keyFile) }) });
    }
    if (sources.length === 0) return checkOk(id, 'no certificates configured (no TLS on MQTT or NATS)');

    const verdicts = (await Promise.all(sources.map((s) => judgeSource(s, ctx.env.now())))).flat();
    const lines = verdicts.map((v) => v.line);
    const failed = verdicts.filter((v) => v.level === 'fail');
    if (failed.length > 0) {
      return checkFail(id, {
        summary: failed.map((v) => v.line).join('; '),
        remedy: 'renew the certificate (or restore its key) and replace the file; an expired NATS CA or server certificate stops the uplink, an MQTT one stops TLS devices',
        details: lines,
      });
    }
    const warned = verdicts.filter((v) => v.level === 'warn');
    if (warned.length > 0) {
      return checkWarn(id, { summary: `${warned.map((v) => v.line).join('; ')}: within ${DEFAULT_EXPIRY_WARNING_DAYS} days`, remedy: 'renew it before it expires and replace the file', details: lines });
    }
    return checkOk(id, lines.join('; '));
  },
};
