import { describe, expect, it } from 'vitest';
import { AgentConfigSchema } from './agent-config.js';
import { parseConfig } from './load-config.js';
import { isOutpostError } from '../errors.js';

describe('parseConfig', () => {
  it('reports every bad key at once as path.to.key: message, unknown keys by their own path', () => {
    const bad = {
      agentId: 'gw 1',
      dataDir: '/tmp/x',
      colour: 'blue',
      broker: { mode: 'embedded', port: 'abc', shape: 'round', devices: [{ id: 'ok', passwordHash: 'plain' }] },
      outbox: { durability: 'fast' },
    };
    let caught: unknown;
    try {
      parseConfig(AgentConfigSchema, bad, 'config file x.yaml');
    } catch (err) {
      caught = err;
    }
    expect(isOutpostError(caught, 'CONFIG_INVALID')).toBe(true);
    const message = (caught as Error).message;
    for (const path of ['agentId:', 'colour: unknown key', 'broker.port:', 'broker.shape: unknown key', 'broker.devices.0.passwordHash:', 'outbox.durability:']) {
      expect(message).toContain(path);
    }
  });

  it('fills defaults for a minimal config', () => {
    const config = parseConfig(AgentConfigSchema, { agentId: 'gw-1', dataDir: 'data' });
    expect(config.broker).toMatchObject({ mode: 'embedded', port: 1883, allowAnonymous: false });
    expect(config.outbox.durability).toBe('power');
  });
});
