import { dirname, resolve } from 'node:path';
import { AgentConfigSchema, loadConfigFile, type AgentConfig } from '@outpost/shared';
import { assertTrustedKeys } from './inference/model-source.js';

/**
 * Loads and validates an agent config file (YAML or JSON). Relative paths in it (dataDir,
 * TLS files, the inference model files) are resolved against the config file's own folder,
 * so a config works from any working directory. Trusted model keys must parse as ed25519
 * public keys.
 *
 * @throws OutpostError CONFIG_UNREADABLE, CONFIG_INVALID (every bad key as `path.to.key: message`).
 */
export async function loadAgentConfig(file: string): Promise<AgentConfig> {
  const config = await loadConfigFile(AgentConfigSchema, file);
  assertTrustedKeys(config.inference.trustedKeys, file);
  const base = dirname(resolve(file));
  const at = (p: string): string => resolve(base, p);
  const optionalAt = (p: string | undefined): string | undefined => (p === undefined ? undefined : at(p));
  const broker =
    config.broker.mode === 'embedded'
      ? {
          ...config.broker,
          tls: config.broker.tls && {
            ...config.broker.tls,
            certFile: at(config.broker.tls.certFile),
            keyFile: at(config.broker.tls.keyFile),
            caFile: config.broker.tls.caFile === undefined ? undefined : at(config.broker.tls.caFile),
          },
        }
      : { ...config.broker, caFile: config.broker.caFile === undefined ? undefined : at(config.broker.caFile) };
  const filesAt = (files: { onnxPath: string; manifestPath: string }) => ({ onnxPath: at(files.onnxPath), manifestPath: at(files.manifestPath) });
  const model = config.inference.model;
  const inference = { ...config.inference, model: model === undefined ? undefined : filesAt(model), models: config.inference.models.map(filesAt) };
  const uplink = config.uplink && {
    ...config.uplink,
    enrollmentFile: optionalAt(config.uplink.enrollmentFile),
    credsFile: optionalAt(config.uplink.credsFile),
    tls: config.uplink.tls && { caFile: optionalAt(config.uplink.tls.caFile), certFile: optionalAt(config.uplink.tls.certFile), keyFile: optionalAt(config.uplink.tls.keyFile) },
  };
  return { ...config, dataDir: at(config.dataDir), broker, inference, uplink };
}
