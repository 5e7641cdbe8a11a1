import { Duplex } from 'node:stream';

// aedes has no maximum packet size (aedes issue 831): its parser buffers a packet whole, so a
// 64 MiB PUBLISH was accepted and grew the broker by 127 MiB. This guard sits between the
// socket and aedes, reads only MQTT fixed headers, and closes the connection as soon as a
// header declares too much, before any of the body is buffered.

/** MQTT 3.1.1 section 2.2.3: the Remaining Length takes at most four bytes. */
const MAX_REMAINING_LENGTH_BYTES = 4;

export type PacketViolation =
  | { reason: 'packet-too-large'; declaredBytes: number }
  | { reason: 'malformed-length' };

export interface GuardPacketsOptions {
  /**
   * Largest Remaining Length (bytes after the fixed header) a packet may declare; a header
   * declaring more closes the connection.
   */
  maxPacketBytes: number;
  /** Called at most once, when the guard closes the connection. Must not throw. */
  onViolation?: (violation: PacketViolation) => void;
}

/** The stream to give aedes, with the socket it wraps (for peer address or certificate). */
export type GuardedDuplex<S extends Duplex = Duplex> = Duplex & { readonly socket: S };

type Phase = 'type' | 'length' | 'body';

/**
 * Incremental MQTT fixed-header scanner: byte 1 (type and flags), the Remaining Length
 * varint (MQTT 3.1.1 section 2.2.3), then that many body bytes skipped uncopied. Its state
 * survives any split of the byte stream into chunks.
 */
function createHeaderScanner(maxPacketBytes: number): (chunk: Buffer) => PacketViolation | undefined {
  let phase: Phase = 'type';
  let remaining = 0;
  let multiplier = 1;
  let lengthBytes = 0;

  return (chunk) => {
    const end = chunk.length;
    let i = 0;
    while (i < end) {
      if (phase === 'body') {
        const skip = Math.min(remaining, end - i);
        i += skip;
        remaining -= skip;
        if (remaining === 0) phase = 'type';
      } else if (phase === 'type') {
        i += 1;
        phase = 'length';
        remaining = 0;
        multiplier = 1;
        lengthBytes = 0;
      } else {
        const byte = chunk[i] as number;
        i += 1;
        remaining += (byte & 0x7f) * multiplier;
        lengthBytes += 1;
        if ((byte & 0x80) !== 0) {
          // A continuation bit on the fourth byte announces a fifth: malformed (MQTT 2.2.3).
          if (lengthBytes === MAX_REMAINING_LENGTH_BYTES) return { reason: 'malformed-length' };
          multiplier *= 128;
        } else if (remaining > maxPacketBytes) {
          return { reason: 'packet-too-large', declaredBytes: remaining };
        } else {
          phase = remaining === 0 ? 'type' : 'body';
        }
      }
    }
    return undefined;
  };
}

class PacketGuard<S extends Duplex> extends Duplex {
  readonly socket: S;
  readonly #scan: (chunk: Buffer) => PacketViolation | undefined;
  readonly #onViolation: ((violation: PacketViolation) => void) | undefined;
  #violated = false;
  #socketEnded = false;
  #pendingDrain: (() => void) | undefined;

  constructor(socket: S, options: GuardPacketsOptions) {
    // Like a net.Socket without allowHalfOpen: when the peer's end has been read, we end too.
    super({ allowHalfOpen: false });
    this.socket = socket;
    this.#scan = createHeaderScanner(options.maxPacketBytes);
    this.#onViolation = options.onViolation;

    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
    if (socket.destroyed) process.nextTick(this.#onClose);
  }

  readonly #onData = (chunk: Buffer): void => {
    if (this.#violated) return;
    const violation = this.#scan(chunk);
    if (violation !== undefined) {
      this.#violate(violation);
      return;
    }
    // Passes whole: the chunk is forwarded as is, never copied.
    if (!this.push(chunk)) this.socket.pause();
  };

  readonly #onEnd = (): void => {
    this.#socketEnded = true;
    if (!this.#violated) this.push(null);
  };

  readonly #onError = (err: Error): void => {
    this.destroy(err);
  };

  readonly #onClose = (): void => {
    // After a clean end, let the reader drain what is buffered (a device may publish and
    // disconnect in one write); allowHalfOpen: false then finishes and closes us. Otherwise
    // the connection is gone and so are we.
    if (this.#socketEnded && !this.#violated) {
      this.#releaseDrain();
      return;
    }
    this.destroy();
  };

  #violate(violation: PacketViolation): void {
    this.#violated = true;
    this.socket.destroy();
    this.destroy();
    this.#onViolation?.(violation);
  }

  #releaseDrain(): void {
    const release = this.#pendingDrain;
    if (release === undefined) return;
    this.#pendingDrain = undefined;
    this.socket.removeListener('drain', release);
    release();
  }

  #afterWrite(callback: (error?: Error | null) => void): void {
    if (!this.socket.writableNeedDrain) {
      callback();
      return;
    }
    const release = (): void => {
      this.#pendingDrain = undefined;
      this.socket.removeListener('drain', release);
      callback();
    };
    this.#pendingDrain = release;
    this.socket.on('drain', release);
  }

  override _read(): void {
    if (this.socket.isPaused() && !this.#violated) this.socket.resume();
  }

  override _write(chunk: Buffer, encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.socket.destroyed) {
      callback(new Error('write after the socket was closed'));
      return;
    }
    this.socket.write(chunk, encoding);
    this.#afterWrite(callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer; encoding: BufferEncoding }>, callback: (error?: Error | null) => void): void {
    if (this.socket.destroyed) {
      callback(new Error('write after the socket was closed'));
      return;
    }
    // mqtt-packet writes one packet in several small writes under cork(): send them in one go.
    this.socket.cork();
    for (const { chunk, encoding } of chunks) this.socket.write(chunk, encoding);
    this.socket.uncork();
    this.#afterWrite(callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (!this.socket.destroyed) this.socket.end();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const release = this.#pendingDrain;
    if (release !== undefined) this.socket.removeListener('drain', release);
    this.#pendingDrain = undefined;
    this.socket.destroy();
    callback(error);
  }
}

/**
 * Wraps a client socket (net.Socket or tls.TLSSocket) in a Duplex to hand to aedes
 * `handle()`. Writes go to the socket; reads come from it after their MQTT fixed headers are
 * checked: a packet declaring a Remaining Length above `maxPacketBytes`, or a Remaining Length
 * with a fifth byte (MQTT 3.1.1 section 2.2.3), destroys the socket and the wrapper at once,
 * without buffering the body, and calls `onViolation` once. Headers are scanned
 * incrementally, so any chunking of the stream is handled; bodies are not copied.
 * Backpressure holds both ways; end, close and errors are passed on both ways.
 */
export function guardPackets<S extends Duplex>(socket: S, options: GuardPacketsOptions): GuardedDuplex<S> {
  if (!Number.isSafeInteger(options.maxPacketBytes) || options.maxPacketBytes < 0) {
    throw new RangeError(`maxPacketBytes must be a non-negative integer, got ${options.maxPacketBytes}`);
  }
  return new PacketGuard(socket, options);
}
