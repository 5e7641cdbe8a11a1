// NATS: reachable and accepting this agent's own credentials (the enrolment bundle, or the creds
// and TLS files the config names), as the agent itself connects.
import { DoctorCheckId, redactUrl } from '@outpost/shared';
import { checkFail, checkOk, checkSkip, checkWarn, type DoctorStep } from './check.js';

const id = DoctorCheckId.nats;

export const natsCheck: DoctorStep = {
  id,
  async run(ctx) {
    const { config, credentials } = ctx;
    if (config === undefined) return checkSkip(id, 'not checked: the config is invalid');
    if (config.uplink === undefined || credentials === undefined) {
      return checkWarn(id, {
        summary: 'no uplink configured: the agent buffers device data and never sends it',
        remedy: `enrol the agent (outpostctl agents enroll ${config.agentId} --out FILE) and set uplink.enrollmentFile, or set uplink.servers`,
      });
    }
    const servers = credentials.servers.map(redactUrl).join(', ');
    const enrolled = config.uplink.enrollmentFile !== undefined;
    const identity = enrolled ? `the enrolment bundle ${config.uplink.enrollmentFile}` : credentials.creds !== undefined ? `the creds file ${config.uplink.credsFile ?? ''}` : 'the configured user/token';
    const result = await ctx.env.connectNats(config.uplink, credentials);
    switch (result.type) {
      case 'connected':
        ctx.nats = result.probe;
        return checkOk(id, `connected to ${result.probe.server} with ${identity}${credentials.tls?.ca === undefined ? '' : ' over TLS'}; round trip ${result.probe.rttMs} ms`);
      case 'unreachable':
        return checkFail(id, {
          summary: `cannot reach NATS at ${servers}: ${result.message}`,
          remedy: 'check that nats-server runs there and that the gateway may reach it (DNS, firewall, port); meanwhile the agent buffers',
        });
      case 'auth-refused':
        return checkFail(id, {
          summary: `NATS at ${servers} refused ${identity}: ${result.message}`,
          remedy: enrolled
            ? `this agent's NATS user is unknown to the server or revoked: enrol it again (outpostctl agents enroll ${config.agentId} --out FILE) and point uplink.enrollmentFile at the new bundle`
            : 'check uplink.credsFile (or user, pass, token) against the server',
        });
      case 'tls-failed':
        return checkFail(id, {
          summary: `TLS with NATS at ${servers} failed: ${result.message}`,
          remedy: `the server's certificate must verify against the CA in ${enrolled ? 'the enrolment bundle' : 'uplink.tls.caFile'} and name the host in the server URL; see the certificates check for dates`,
        });
      case 'failed':
        return checkFail(id, { summary: `NATS at ${servers}: ${result.message}`, remedy: 'see the message; the agent retries on its own and buffers meanwhile' });
    }
  },
};
