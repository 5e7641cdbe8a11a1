import { dirname, resolve } from 'node:path';
import { AgentConfigSchema, loadConfigFile, type AgentConfig } from '@outpost/shared';

/**
 * Loads and validates an agent config file (YAML or JSON). Relative paths in it (dataDir,
 * TLS files) are resolved against the config file's own folder, so a config works from any
 * working directory.
 */
export async function loadAgentConfig(file: string): Promise<AgentConfig> {
  const config = await loadConfigFile(AgentConfigSchema, file);
  const base = dirname(resolve(file));
  const at = (p: string): string => resolve(base, p);
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
  return { ...config, dataDir: at(config.dataDir), broker };
}
