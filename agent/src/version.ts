/** The agent's version, reported in heartbeats; keep in step with agent/package.json. */
export const AGENT_VERSION = '0.1.0';
