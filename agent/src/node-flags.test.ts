import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { AGENT_NODE_FLAGS } from './node-flags.js';

describe('AGENT_NODE_FLAGS', () => {
  it('are the flags the outpost-agent binary starts node with (the shebang of main.ts)', () => {
    const shebang = readFileSync(new URL('./main.ts', import.meta.url), 'utf8').split('\n')[0]!;
    expect(shebang).toBe(`#!/usr/bin/env -S node ${AGENT_NODE_FLAGS.join(' ')}`);
  });
});
