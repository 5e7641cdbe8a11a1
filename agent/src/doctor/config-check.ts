// The config file, validated exactly as the agent validates it at start (every bad key by its
// path), and the files its uplink names (enrolment bundle, creds, TLS), read as the agent reads them.
import { DoctorCheckId, ErrorCode, isOutpostError } from '@outpost/shared';
import { loadAgentConfig } from '../config.js';
import { readUplinkCredentials } from '../uplink/credentials.js';
import { checkFail, checkOk, type DoctorStep } from './check.js';

const id = DoctorCheckId.config;

export const configCheck: DoctorStep = {
  id,
  async run(ctx) {
    let config;
    const file = ctx.configFile;
    try {
      if (file === undefined) {
        if (ctx.runningConfig === undefined) return checkFail(id, { summary: 'no config file given', remedy: 'give the agent config file with --config FILE' });
        config = ctx.runningConfig;
      } else {
        config = await loadAgentConfig(file);
      }
    } catch (error) {
      if (isOutpostError(error, ErrorCode.CONFIG_INVALID)) {
        const issues = (error.details['issues'] as { path: string; message: string }[] | undefined) ?? [];
        const lines = issues.map((i) => `${i.path || '(root)'}: ${i.message}`);
        return checkFail(id, {
          summary: lines.length === 0 ? `${file}: ${error.message}` : `${file}: ${lines.length} bad key${lines.length === 1 ? '' : 's'}: ${lines.join('; ')}`,
          remedy: 'fix each key named (path: problem) in the config file, then run the doctor again',
          details: lines,
        });
      }
      if (isOutpostError(error, ErrorCode.CONFIG_UNREADABLE)) {
        return checkFail(id, { summary: error.message, remedy: `check the path given to --config, and that the agent's user may read ${file}` });
      }
      return checkFail(id, { summary: `${file}: ${(error as Error).message}`, remedy: 'fix the config file, then run the doctor again' });
    }
    let enrolled;
    try {
      enrolled = await readUplinkCredentials(config);
    } catch (error) {
      const message = (error as Error).message;
      if (isOutpostError(error, ErrorCode.SECRET_FILE_UNSAFE)) {
        return checkFail(id, { summary: message, remedy: 'chmod 600 the file (and chown it to the agent\'s user): it holds a secret' });
      }
      if (isOutpostError(error, ErrorCode.CONFIG_INVALID) && config.uplink?.enrollmentFile !== undefined) {
        return checkFail(id, { summary: message, remedy: `write the bundle again with \`outpostctl agents enroll ${config.agentId} --out FILE\` and point uplink.enrollmentFile at it` });
      }
      return checkFail(id, { summary: `the uplink's files cannot be read: ${message}`, remedy: 'check the paths under uplink (enrollmentFile, credsFile, tls) and that the agent\'s user may read them' });
    }
    ctx.config = enrolled.config;
    ctx.credentials = enrolled.credentials;
    const uplink = config.uplink;
    const source = uplink === undefined ? 'no uplink' : uplink.enrollmentFile !== undefined ? `uplink from the enrolment bundle ${uplink.enrollmentFile}` : `uplink to ${(uplink.servers ?? []).join(', ')}`;
    return checkOk(id, `${file ?? 'the running config (the agent was started in-process, without a file)'} is valid: agent ${config.agentId}, ${source}`);
  },
};
