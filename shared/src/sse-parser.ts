// A Server-Sent Events parser (WHATWG HTML "event stream interpretation"), fed with decoded
// text chunks as they arrive. The browser's EventSource cannot send an Authorization header,
// so the dashboard and outpostctl read `GET /api/events` with fetch and parse it here. Pure and
// without dependencies: the dashboard imports it as `@outpost/shared/sse-parser`.

export interface SseMessage {
  /** The `event:` field; "message" when the server sent none. */
  event: string;
  /** The `data:` lines joined with "\n". */
  data: string;
  /** The last `id:` seen, or "" when none. */
  lastEventId: string;
}

export interface SseParser {
  /** Parses a chunk (any split, even inside a line or a CRLF) and returns the completed messages. */
  push(chunk: string): SseMessage[];
  /** The reconnection delay the server asked for with `retry:`, if it did. */
  readonly retryMs: number | undefined;
}

/** A parser for one stream; create another for the next connection. */
export function createSseParser(): SseParser {
  let buffer = '';
  let event = '';
  let data: string[] = [];
  let lastEventId = '';
  let retryMs: number | undefined;
  // A chunk that ends in "\r" may be the first half of "\r\n": the "\n" must not end a second line.
  let skipLeadingLf = false;

  const takeLine = (line: string, out: SseMessage[]): void => {
    if (line === '') {
      // Spec: a blank line dispatches; no data lines means nothing to dispatch.
      if (data.length > 0) out.push({ event: event === '' ? 'message' : event, data: data.join('\n'), lastEventId });
      event = '';
      data = [];
      return;
    }
    if (line.startsWith(':')) return; // a comment (the server's keep-alive)
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
    else if (field === 'id' && !value.includes('\0')) lastEventId = value;
    else if (field === 'retry' && /^\d+$/.test(value)) retryMs = Number(value);
  };

  return {
    push(chunk) {
      const out: SseMessage[] = [];
      let text = chunk;
      if (skipLeadingLf && text.startsWith('\n')) text = text.slice(1);
      skipLeadingLf = false;
      buffer += text;
      let start = 0;
      for (let i = 0; i < buffer.length; i++) {
        const c = buffer[i];
        if (c !== '\n' && c !== '\r') continue;
        takeLine(buffer.slice(start, i), out);
        if (c === '\r') {
          if (i + 1 === buffer.length) skipLeadingLf = true;
          else if (buffer[i + 1] === '\n') i++;
        }
        start = i + 1;
      }
      buffer = buffer.slice(start);
      return out;
    },
    get retryMs() {
      return retryMs;
    },
  };
}
