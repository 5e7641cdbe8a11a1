import { ControlPlaneConfigSchema, loadConfigFile, type ControlPlaneConfig } from '@outpost/shared';

/**
 * Loads and validates a control-plane config file (YAML or JSON).
 * @throws OutpostError CONFIG_UNREADABLE or CONFIG_INVALID (every bad key as `path: message`).
 */
export function loadControlPlaneConfig(file: string): Promise<ControlPlaneConfig> {
  return loadConfigFile(ControlPlaneConfigSchema, file);
}
