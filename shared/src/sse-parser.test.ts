import { describe, expect, it } from 'vitest';
import { createSseParser } from './sse-parser.js';

describe('createSseParser', () => {
  it('dispatches on a blank line, joins data lines, skips comments, defaults the event name', () => {
    const parser = createSseParser();
    expect(parser.push(': keepalive\n\nevent: agents\ndata: {"a":1}\n\ndata: x\ndata: y\n\n')).toEqual([
      { event: 'agents', data: '{"a":1}', lastEventId: '' },
      { event: 'message', data: 'x\ny', lastEventId: '' },
    ]);
  });

  it('reassembles any split of the stream, CRLF split across chunks included', () => {
    const text = 'event: telemetry\r\ndata: {"ts":1}\r\n\r\nevent: anomaly\rdata:{"ts":2}\r\rid: 7\nevent: x\ndata\n\n';
    const whole = createSseParser().push(text);
    expect(whole).toEqual([
      { event: 'telemetry', data: '{"ts":1}', lastEventId: '' },
      { event: 'anomaly', data: '{"ts":2}', lastEventId: '' },
      { event: 'x', data: '', lastEventId: '7' },
    ]);
    for (let cut = 1; cut < text.length; cut++) {
      const parser = createSseParser();
      expect([...parser.push(text.slice(0, cut)), ...parser.push(text.slice(cut))], `cut at ${cut}`).toEqual(whole);
    }
  });

  it('keeps an unterminated event until its blank line, and reads retry', () => {
    const parser = createSseParser();
    expect(parser.push('retry: 2500\nevent: agents\ndata: {}\n')).toEqual([]);
    expect(parser.retryMs).toBe(2500);
    expect(parser.push('\n')).toEqual([{ event: 'agents', data: '{}', lastEventId: '' }]);
    expect(parser.push('retry: soon\n\n')).toEqual([]);
    expect(parser.retryMs).toBe(2500);
  });

  it('dispatches nothing for an event without data lines', () => {
    const parser = createSseParser();
    expect(parser.push('event: rollout\n\n')).toEqual([]);
    expect(parser.push('event: rollout\ndata: {"id"')).toEqual([]);
    expect(parser.push(':"r2"}\n\n')).toEqual([{ event: 'rollout', data: '{"id":"r2"}', lastEventId: '' }]);
  });
});
