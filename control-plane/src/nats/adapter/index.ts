// The NATS adapter: the control plane's only import of the @nats-io modules (lint enforces
// it). Everything else sees NATS through the interfaces of ../types.ts.
export { connectNats } from './connection.js';
export { agentInboxPrefix, agentsAccountJwt, createNatsAuthMaterial, mintAgentUser, natsServerAuthConfig, pushAccountJwt, type AgentUser, type NatsAuthMaterial } from './auth.js';
