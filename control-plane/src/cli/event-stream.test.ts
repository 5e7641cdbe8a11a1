import { describe, expect, it } from 'vitest';
import { createSseParser } from './event-stream.js';

describe('createSseParser', () => {
  it('parses events split anywhere, with LF, CRLF or CR line ends, skipping comments', () => {
    const text = ': keepalive\n\nevent: rollout\ndata: {"id":"r1"}\n\nevent: agents\r\ndata: {"agents":[]}\r\n\r\ndata: a\rdata: b\r\r';
    const all = createSseParser().push(text);
    expect(all).toEqual([
      { event: 'rollout', data: '{"id":"r1"}' },
      { event: 'agents', data: '{"agents":[]}' },
      { event: 'message', data: 'a\nb' },
    ]);
    // The same text one character at a time: "\r" then "\n" in two chunks is one line end.
    const parser = createSseParser();
    const pieces = [...text].flatMap((c) => parser.push(c));
    expect(pieces).toEqual(all);
  });

  it('dispatches nothing for an event without data, and keeps a half event for the next chunk', () => {
    const parser = createSseParser();
    expect(parser.push('event: rollout\n\n')).toEqual([]);
    expect(parser.push('event: rollout\ndata: {"id"')).toEqual([]);
    expect(parser.push(':"r2"}\n\n')).toEqual([{ event: 'rollout', data: '{"id":"r2"}' }]);
  });
});
