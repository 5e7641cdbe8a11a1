import { Duplex } from 'node:stream';
import { CONNACK_UNACCEPTABLE_PROTOCOL, createScanner, type PacketViolation, type PublishPacer, type ScanStop } from './packet-scanner.js';

export type { PacketViolation, PublishPacer } from './packet-scanner.js';

// This guard sits between the socket and aedes and reads only what it must of each packet:
// - aedes has no maximum packet size (aedes issue 831): its parser buffers a packet whole, so a
//   64 MiB PUBLISH was accepted and grew the broker by 127 MiB. The guard closes the
//   connection as soon as a fixed header declares too much, before any of the body is buffered.
// - Rate limits by backpressure (DESIGN section 2): a device over its rate is read more slowly,
//   never disconnected. Before a QoS 1/2 PUBLISH is passed on, the pacer may ask for a pause;
//   the guard then holds the rest of the stream and stops reading the socket, so the device's
//   publishes wait in TCP buffers and aedes sees them at exactly the device's rate (a pause per
//   packet, not per socket read, so aedes' keepalive keeps seeing packets).
// - MQTT-3.1.2-2: a CONNECT with a protocol level the broker does not support is answered
//   with CONNACK return code 1 before the connection closes (aedes closes without a CONNACK).

export interface GuardPacketsOptions {
  /**
   * Largest Remaining Length (bytes after the fixed header) a packet may declare; a header
   * declaring more closes the connection.
   */
  maxPacketBytes: number;
  /** Called at most once, when the guard closes the connection. Must not throw. */
  onViolation?: (violation: PacketViolation) => void;
  /** Called each time a PUBLISH is held back by the pacer, with the pause in ms. Must not throw. */
  onPaced?: (pauseMs: number) => void;
}

/** The stream to give aedes, with the socket it wraps (for peer address or certificate). */
export type GuardedDuplex<S extends Duplex = Duplex> = Duplex & {
  readonly socket: S;
  /** Paces the QoS 1/2 PUBLISH packets that follow (set once the device is known, after CONNECT). */
  pacePublishes(pacer: PublishPacer): void;
};

class PacketGuard<S extends Duplex> extends Duplex {
  readonly socket: S;
  readonly #scan: (chunk: Buffer, from: number) => ScanStop | undefined;
  readonly #onViolation: ((violation: PacketViolation) => void) | undefined;
  readonly #onPaced: ((pauseMs: number) => void) | undefined;
  #pacer: PublishPacer | undefined;
  #violated = false;
  #socketEnded = false;
  #pendingDrain: (() => void) | undefined;
  /** Bytes read but held back by the pacer, oldest first; the first starts at a held PUBLISH. */
  #held: Buffer[] = [];
  #holdTimer: NodeJS.Timeout | undefined;
  /** False while the reader (aedes) has not asked for more since the last push. */
  #wantMore = true;
  /** cork() depth: mqtt-packet corks around each packet it writes and uncorks on the next tick. */
  #corks = 0;
  /** What aedes wrote while corked: sent as one socket write at the last uncork. */
  #out: Buffer[] = [];
  /** Set while our writer waits for a 'drain' relayed from the socket's (see #relayDrain). */
  #relayedDrain: (() => void) | undefined;

  constructor(socket: S, options: GuardPacketsOptions) {
    // Like a net.Socket without allowHalfOpen: when the peer's end has been read, we end too.
    super({ allowHalfOpen: false });
    this.socket = socket;
    this.#scan = createScanner(options.maxPacketBytes, () => this.#pacer);
    this.#onViolation = options.onViolation;
    this.#onPaced = options.onPaced;

    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
    if (socket.destroyed) process.nextTick(this.#onClose);
  }

  pacePublishes(pacer: PublishPacer): void {
    this.#pacer = pacer;
  }

  readonly #onData = (chunk: Buffer): void => {
    if (this.#violated) return;
    if (this.#holdTimer !== undefined) {
      // Read before the socket saw its pause: wait behind the held bytes.
      this.#held.push(chunk);
      return;
    }
    this.#pass(chunk, 0);
  };

  /** Scans `chunk` from `from` and pushes what may pass; holds the rest when the pacer says so. */
  #pass(chunk: Buffer, from: number): void {
    const stop = this.#scan(chunk, from);
    if (stop?.type === 'violation') {
      this.#violate(stop.violation);
      return;
    }
    const passUpTo = stop === undefined ? chunk.length : stop.offset;
    // Passes whole where it can: a chunk is forwarded as is, never copied.
    const passing = from === 0 && passUpTo === chunk.length ? chunk : chunk.subarray(from, passUpTo);
    if (passing.length > 0) this.#wantMore = this.push(passing);
    if (stop === undefined) {
      if (!this.#wantMore) this.socket.pause();
      return;
    }
    this.#held.unshift(chunk.subarray(stop.offset));
    this.socket.pause();
    this.#onPaced?.(stop.pauseMs);
    this.#holdTimer = setTimeout(this.#release, stop.pauseMs);
  }

  /** The pause is over: pass the held bytes again (they may be held again), then read on. */
  readonly #release = (): void => {
    this.#holdTimer = undefined;
    while (this.#held.length > 0 && this.#holdTimer === undefined && !this.#violated && !this.destroyed) {
      this.#pass(this.#held.shift()!, 0);
    }
    if (this.#holdTimer !== undefined || this.#violated || this.destroyed) return;
    if (this.#socketEnded) this.push(null);
    else if (this.#wantMore) this.socket.resume();
  };

  readonly #onEnd = (): void => {
    this.#socketEnded = true;
    // Held publishes still go to aedes first; #release ends the stream after them.
    if (!this.#violated && this.#holdTimer === undefined) this.push(null);
  };

  readonly #onError = (err: Error): void => {
    this.destroy(err);
  };

  readonly #onClose = (): void => {
    // After a clean end, let the reader drain what is buffered (a device may publish and
    // disconnect in one write); allowHalfOpen: false then finishes and closes us. Otherwise
    // the connection is gone and so are we.
    if (this.#socketEnded && !this.#violated) {
      // A closed socket emits no more 'drain' (nor does an ending one), so a writer waiting
      // for one would never read on to our end: let it go on. Its next write closes us.
      this.#releaseDrain();
      this.#relayedDrain?.();
      return;
    }
    this.destroy();
  };

  #violate(violation: PacketViolation): void {
    this.#violated = true;
    this.#clearHold();
    if (violation.reason === 'unsupported-protocol-level' && !this.socket.destroyed) {
      // MQTT-3.1.2-2: answer with CONNACK 1, then close.
      this.socket.end(CONNACK_UNACCEPTABLE_PROTOCOL);
      this.socket.once('finish', () => this.socket.destroy());
    } else {
      this.socket.destroy();
    }
    this.destroy();
    this.#onViolation?.(violation);
  }

  #clearHold(): void {
    if (this.#holdTimer !== undefined) clearTimeout(this.#holdTimer);
    this.#holdTimer = undefined;
    this.#held = [];
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

  /**
   * Writes go straight to the socket, not through this Duplex's own Writable buffer: aedes
   * writes a PUBACK as three small writes under cork(), and a second stream layer per write
   * (buffer, _writev, callbacks) cost more than the rest of the PUBACK. While corked, writes
   * are collected and sent as one socket write at the last uncork(); the return value and the
   * 'drain' event are the socket's, which is what aedes' backpressure waits on.
   */
  override write(chunk: unknown, encoding?: BufferEncoding | ((error?: Error | null) => void), callback?: (error?: Error | null) => void): boolean {
    const cb = typeof encoding === 'function' ? encoding : callback;
    if (this.destroyed || this.socket.destroyed) {
      this.#writeAfterClose(cb);
      return false;
    }
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, typeof encoding === 'string' ? encoding : 'utf8') : (chunk as Buffer);
    if (this.#corks > 0) {
      this.#out.push(buf);
      if (cb !== undefined) process.nextTick(cb);
      return this.#relayDrain(!this.socket.writableNeedDrain);
    }
    this.#flushOut();
    return this.#relayDrain(this.socket.write(buf, cb));
  }

  override cork(): void {
    this.#corks++;
  }

  override uncork(): void {
    if (this.#corks === 0) return;
    this.#corks--;
    if (this.#corks === 0) this.#flushOut();
  }

  #flushOut(): void {
    const out = this.#out;
    if (out.length === 0) return;
    this.#out = [];
    if (this.socket.destroyed) {
      this.#writeAfterClose(undefined);
      return;
    }
    this.#relayDrain(this.socket.write(out.length === 1 ? out[0]! : Buffer.concat(out)));
  }

  /**
   * A write with nowhere to go: the socket is closed (by the peer after a clean end, while we
   * stay open for the reader to take the last bytes, or by us). Like a net.Socket written to
   * after the peer's FIN (EPIPE), we close with an error. Returning false alone is not enough:
   * aedes takes it as backpressure and waits for a 'drain' that a closed socket never emits,
   * reads nothing more meanwhile, so never sees our end, and the client stays connected (and
   * counted) until aedes' drainTimeout, 60 s by default.
   */
  #writeAfterClose(cb: ((error?: Error | null) => void) | undefined): void {
    const error = new Error('write after the socket was closed');
    if (cb !== undefined) process.nextTick(cb, error);
    if (!this.destroyed) this.destroy(error);
  }

  /** When the socket asks to wait, its next 'drain' is passed on as ours. */
  #relayDrain(ok: boolean): boolean {
    if (!ok && this.#relayedDrain === undefined) {
      const relay = (): void => {
        this.socket.removeListener('drain', relay);
        this.#relayedDrain = undefined;
        this.emit('drain');
      };
      this.#relayedDrain = relay;
      this.socket.on('drain', relay);
    }
    return ok;
  }

  override _read(): void {
    this.#wantMore = true;
    if (this.socket.isPaused() && !this.#violated && this.#holdTimer === undefined) this.socket.resume();
  }

  override _write(chunk: Buffer, encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.socket.destroyed) {
      callback(new Error('write after the socket was closed'));
      return;
    }
    this.#flushOut();
    this.socket.write(chunk, encoding);
    this.#afterWrite(callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer; encoding: BufferEncoding }>, callback: (error?: Error | null) => void): void {
    if (this.socket.destroyed) {
      callback(new Error('write after the socket was closed'));
      return;
    }
    this.#flushOut();
    this.socket.cork();
    for (const { chunk, encoding } of chunks) this.socket.write(chunk, encoding);
    this.socket.uncork();
    this.#afterWrite(callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#flushOut();
    if (!this.socket.destroyed) this.socket.end();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#clearHold();
    this.#out = [];
    if (this.#relayedDrain !== undefined) this.socket.removeListener('drain', this.#relayedDrain);
    this.#relayedDrain = undefined;
    const release = this.#pendingDrain;
    if (release !== undefined) this.socket.removeListener('drain', release);
    this.#pendingDrain = undefined;
    // A CONNACK 1 on its way out is let finish; #violate destroys the socket after it.
    if (!this.#violated || this.socket.writableFinished) this.socket.destroy();
    callback(error);
  }
}

/**
 * Wraps a client socket (net.Socket or tls.TLSSocket) in a Duplex to hand to aedes
 * `handle()`. Writes go to the socket; reads come from it after their MQTT fixed headers are
 * checked: a packet declaring a Remaining Length above `maxPacketBytes`, or a Remaining Length
 * with a fifth byte (MQTT 3.1.1 section 2.2.3), destroys the socket and the wrapper at once,
 * without buffering the body, and calls `onViolation` once; so does a first CONNECT with an
 * unsupported protocol level, after a CONNACK with return code 1. Once `pacePublishes` is
 * called, each QoS 1/2 PUBLISH waits for the pacer's go. Headers are scanned incrementally, so
 * any chunking of the stream is handled; bodies are not copied. Backpressure holds both ways;
 * end, close and errors are passed on both ways.
 */
export function guardPackets<S extends Duplex>(socket: S, options: GuardPacketsOptions): GuardedDuplex<S> {
  if (!Number.isSafeInteger(options.maxPacketBytes) || options.maxPacketBytes < 0) {
    throw new RangeError(`maxPacketBytes must be a non-negative integer, got ${options.maxPacketBytes}`);
  }
  return new PacketGuard(socket, options);
}
