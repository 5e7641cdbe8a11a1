// A rolled-out config patch over the agent's own config: the config it yields, checked whole
// before anything changes, and which of its changes cannot reach live connections. Pure.
import { AgentConfigSchema, ErrorCode, LISTENER_RESTART_KEYS, mergePatch, type AgentConfig, type ManagedConfigPatch } from '@outpost/shared';

export type ResolvedConfig = { ok: true; config: AgentConfig } | { ok: false; code: typeof ErrorCode.CONFIG_INVALID; reason: string };

/**
 * The agent's config with `patch` applied (RFC 7386 merge patch over the config from its file),
 * validated as a whole. A bad value is reported with the path of its key, as a config file's
 * would be (`ingest.rateLimitMsgsPerS: Too small: expected number to be >=0`).
 */
export function resolveManagedConfig(base: AgentConfig, patch: ManagedConfigPatch | null): ResolvedConfig {
  const merged = patch === null ? base : mergePatch(base, patch);
  const parsed = AgentConfigSchema.safeParse(merged);
  if (parsed.success) return { ok: true, config: parsed.data };
  const reason = parsed.error.issues
    .slice(0, 5)
    .map((i) => `${i.path.map(String).join('.') || '(config)'}: ${i.message}`)
    .join('; ');
  return { ok: false, code: ErrorCode.CONFIG_INVALID, reason };
}

function valueAt(config: unknown, path: string): unknown {
  let value = config;
  for (const key of path.split('.')) value = value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[key] : undefined;
  return value;
}

/** The managed keys that differ between two configs and need the device connections closed to take effect. */
export function listenerRestartChanges(from: AgentConfig, to: AgentConfig): string[] {
  return LISTENER_RESTART_KEYS.filter((path) => JSON.stringify(valueAt(from, path)) !== JSON.stringify(valueAt(to, path)));
}
