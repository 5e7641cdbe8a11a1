// The model files, verified exactly as inference verifies them before a load (signature by a
// trusted key, expiry by the doctor's clock, size and sha256, no external data): the config's
// own model, and the one a rollout left in the model cache, which the agent runs instead.
import { createLogger, DoctorCheckId, ErrorCode, isOutpostError } from '@outpost/shared';
import { readModelFiles, verifyModel, type ModelFiles } from '../inference/index.js';
import { cachedModelFiles, readAppliedState } from '../reconcile/applied-state.js';
import { checkFail, checkOk, checkWarn, checkSkip, DEFAULT_EXPIRY_WARNING_DAYS, formatDuration, type DoctorStep } from './check.js';

const id = DoctorCheckId.models;

const REMEDIES: Partial<Record<string, string>> = {
  [ErrorCode.MODEL_DIGEST_MISMATCH]: 'the .onnx file is not the one its signed manifest names (changed or damaged): put both files back as published, or let a rollout send them again',
  [ErrorCode.MODEL_SIGNATURE_INVALID]: 'the manifest is unsigned or was changed after signing: restore it as published, or sign it again with an operator key',
  [ErrorCode.MODEL_KEY_UNTRUSTED]: "signed by a key this agent does not trust: add the signer's public key to inference.trustedKeys (or enrol with it)",
  [ErrorCode.MODEL_KEY_INVALID]: 'a trusted key does not parse as an ed25519 public key: fix inference.trustedKeys',
  [ErrorCode.MODEL_EXPIRED]: 'publish and roll out a newer version of the model (an expired one is refused at load)',
  [ErrorCode.MODEL_EXTERNAL_DATA]: 'the graph references external data files, which the agent never loads: export the model self-contained',
};

interface ModelToCheck {
  what: string;
  files: ModelFiles;
}

export const modelCheck: DoctorStep = {
  id,
  async run(ctx) {
    const config = ctx.config;
    if (config === undefined) return checkSkip(id, 'not checked: the config is invalid');
    const inference = config.inference;
    if (!inference.enabled) return checkOk(id, 'inference is off (inference.enabled: false): no model files to check');
    const models: ModelToCheck[] = [];
    if (inference.model !== undefined) models.push({ what: 'the config\'s model (inference.model)', files: inference.model });
    // What a rollout applied last runs instead of the config's model when its files are cached.
    const applied = await readAppliedState(config.dataDir, createLogger({ name: 'outpost-agent-doctor', level: 'silent' }));
    const rolledOut = applied?.desired.model ?? null;
    if (rolledOut !== null) models.push({ what: `the rolled-out model ${rolledOut.name}@${rolledOut.version} (model cache)`, files: cachedModelFiles(config.dataDir, rolledOut.name, rolledOut.version) });
    if (models.length === 0) {
      return checkWarn(id, { summary: 'inference is on but no model is configured or rolled out: nothing is scored', remedy: 'set inference.model (a .onnx file and its signed manifest), or roll a model out to this agent' });
    }
    const nowMs = ctx.env.now();
    const warnBeforeMs = DEFAULT_EXPIRY_WARNING_DAYS * 86_400_000;
    const findings: string[] = [];
    let expiring: string | undefined;
    for (const { what, files } of models) {
      try {
        const verified = await verifyModel(await readModelFiles(files), { trustedKeys: inference.trustedKeys, maxModelBytes: inference.maxModelBytes, nowMs });
        const leftMs = Date.parse(verified.manifest.expiresAt) - nowMs;
        const label = `${verified.ref.name}@${verified.ref.version}`;
        findings.push(`${what}: ${label} verified (signature by a trusted key, sha256 of ${files.onnxPath}), expires in ${formatDuration(leftMs)}`);
        if (leftMs < warnBeforeMs) expiring ??= `${label} expires in ${formatDuration(leftMs)} (${verified.manifest.expiresAt})`;
      } catch (error) {
        const code = isOutpostError(error) ? error.code : undefined;
        return checkFail(id, {
          summary: `${what}: ${code === undefined ? '' : `${code}: `}${(error as Error).message}`,
          remedy: (code === undefined ? undefined : REMEDIES[code]) ?? `check ${files.onnxPath} and ${files.manifestPath}: the agent refuses to load this model`,
          details: findings,
        });
      }
    }
    if (expiring !== undefined) {
      return checkWarn(id, { summary: `${expiring}, within ${DEFAULT_EXPIRY_WARNING_DAYS} days`, remedy: 'publish and roll out a newer version before it expires (an expired model is refused at load)', details: findings });
    }
    return checkOk(id, findings.join('; '));
  },
};
