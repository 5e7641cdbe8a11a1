import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import fc from 'fast-check';
import { generate, writeToStream, type Packet } from 'mqtt-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { guardPackets, type GuardedDuplex, type PacketViolation } from './packet-guard.js';

const MiB = 1024 * 1024;
const DEFAULT_MAX = 256 * 1024;

/** Fixed header of a packet with the given first byte and Remaining Length (MQTT 2.2.3). */
function fixedHeader(firstByte: number, remainingLength: number): Buffer {
  const bytes = [firstByte];
  let value = remainingLength;
  do {
    let byte = value % 128;
    value = Math.floor(value / 128);
    if (value > 0) byte |= 0x80;
    bytes.push(byte);
  } while (value > 0);
  return Buffer.from(bytes);
}

const connectPacket = (): Buffer =>
  generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'sensor-1', keepalive: 30, username: 'sensor-1', password: Buffer.from('pw') });

// Payload bytes 0xff look like Remaining Length continuation bytes: a guard that lost its
// place in the stream would read them as a malformed header and close.
function publishPacket(topic: string, payloadBytes: number, qos: 0 | 1 = 0): Buffer {
  return generate({ cmd: 'publish', topic, payload: Buffer.alloc(payloadBytes, 0xff), qos, messageId: qos === 0 ? undefined : 7, retain: false, dup: false });
}

/** A connection accepted by a plain TCP server, its socket wrapped by the guard. */
interface Guarded {
  client: net.Socket;
  socket: net.Socket;
  guarded: GuardedDuplex<net.Socket>;
  violations: PacketViolation[];
  errors: Error[];
  received: () => Buffer;
  /** Starts reading from the guard (done at once unless `paused`). */
  startReading: () => void;
  /** Resolves once the guard has emitted at least `bytes` in total; rejects if it closes first. */
  waitForBytes: (bytes: number) => Promise<void>;
  closed: Promise<void>;
  clientClosed: Promise<void>;
}

let server: net.Server;
let port: number;
const acceptedSockets: net.Socket[] = [];
const acceptWaiters: Array<(socket: net.Socket) => void> = [];

function nextAccepted(): Promise<net.Socket> {
  const ready = acceptedSockets.shift();
  if (ready !== undefined) return Promise.resolve(ready);
  return new Promise((resolve) => acceptWaiters.push(resolve));
}

beforeAll(async () => {
  server = net.createServer((socket) => {
    const waiter = acceptWaiters.shift();
    if (waiter === undefined) acceptedSockets.push(socket);
    else waiter(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

function observe<S extends Duplex>(client: S, guarded: GuardedDuplex<Duplex>, paused: boolean) {
  const chunks: Buffer[] = [];
  let total = 0;
  let isClosed = false;
  const waiters: Array<{ bytes: number; resolve: () => void; reject: (err: Error) => void }> = [];
  const settle = (): void => {
    for (const waiter of [...waiters]) {
      if (total >= waiter.bytes) waiter.resolve();
      else if (isClosed) waiter.reject(new Error(`guard closed after ${total} of ${waiter.bytes} bytes`));
      else continue;
      waiters.splice(waiters.indexOf(waiter), 1);
    }
  };
  const errors: Error[] = [];
  guarded.on('error', (err) => errors.push(err));
  client.on('error', () => undefined); // a peer reset after a violation is expected
  const closed = new Promise<void>((resolve) =>
    guarded.on('close', () => {
      isClosed = true;
      settle();
      resolve();
    }),
  );
  const clientClosed = new Promise<void>((resolve) => client.on('close', () => resolve()));
  const startReading = (): void => {
    guarded.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      total += chunk.length;
      settle();
    });
  };
  if (!paused) startReading();
  return {
    errors,
    closed,
    clientClosed,
    startReading,
    received: () => Buffer.concat(chunks),
    waitForBytes: (bytes: number) =>
      new Promise<void>((resolve, reject) => {
        waiters.push({ bytes, resolve, reject });
        settle();
      }),
  };
}

async function connectGuarded(options: { maxPacketBytes?: number; paused?: boolean } = {}): Promise<Guarded> {
  const accepted = nextAccepted();
  const client = net.connect(port, '127.0.0.1');
  client.setNoDelay(true);
  await new Promise<void>((resolve, reject) => client.once('connect', resolve).once('error', reject));
  const socket = await accepted;
  const violations: PacketViolation[] = [];
  const guarded = guardPackets(socket, { maxPacketBytes: options.maxPacketBytes ?? DEFAULT_MAX, onViolation: (v) => violations.push(v) });
  return { client, socket, guarded, violations, ...observe(client, guarded, options.paused ?? false) };
}

/**
 * Sends `data` cut at `cuts`, waiting for each piece to come out of the guard before sending
 * the next, so the guard sees exactly these chunk boundaries (TCP cannot merge them).
 */
async function sendInPieces(conn: Pick<Guarded, 'client' | 'waitForBytes'>, data: Buffer, cuts: readonly number[], alreadyReceived = 0): Promise<void> {
  const points = [...new Set([0, ...cuts.filter((c) => c > 0 && c < data.length), data.length])].sort((a, b) => a - b);
  for (let i = 1; i < points.length; i++) {
    conn.client.write(data.subarray(points[i - 1], points[i]));
    await conn.waitForBytes(alreadyReceived + (points[i] as number));
  }
}

async function closeGuarded(conn: Guarded): Promise<void> {
  conn.client.destroy();
  await conn.closed;
}

describe('guardPackets over TCP', () => {
  it('passes packets split at every byte boundary through byte-identical', async () => {
    const data = Buffer.concat([
      connectPacket(),
      generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'devices/sensor-1/#', qos: 1 }] }),
      publishPacket('devices/sensor-1/telemetry', 300, 1), // two-byte Remaining Length
      generate({ cmd: 'puback', messageId: 9 }),
      generate({ cmd: 'pingreq' }), // Remaining Length 0
      publishPacket('devices/sensor-1/telemetry', 20),
      generate({ cmd: 'disconnect' }),
    ]);
    const conn = await connectGuarded();
    for (let cut = 0; cut <= data.length; cut++) {
      await sendInPieces(conn, data, [cut], cut * data.length);
    }
    expect(conn.received().equals(Buffer.concat(Array.from({ length: data.length + 1 }, () => data)))).toBe(true);
    expect(conn.violations).toEqual([]);
    await closeGuarded(conn);
  });

  it('handles 1- to 4-byte Remaining Lengths cut inside their headers, and exactly the limit', async () => {
    const maxPacketBytes = 2 * MiB + 1;
    const sizes = [0, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, maxPacketBytes];
    const packets = sizes.map((size) => Buffer.concat([fixedHeader(0xc0, size), Buffer.alloc(size, 0xff)]));
    const conn = await connectGuarded({ maxPacketBytes });
    let sent = 0;
    for (const packet of packets) {
      for (let cut = 0; cut <= Math.min(6, packet.length); cut++) {
        await sendInPieces(conn, packet, [cut, cut + 1], sent);
        sent += packet.length;
      }
    }
    expect(conn.received().equals(Buffer.concat(packets.flatMap((p) => Array.from({ length: Math.min(6, p.length) + 1 }, () => p))))).toBe(true);
    expect(conn.violations).toEqual([]);
    await closeGuarded(conn);
  });

  it('closes on a PUBLISH declaring 64 MiB without taking in its body (aedes issue 831)', async () => {
    const conn = await connectGuarded({ maxPacketBytes: DEFAULT_MAX });
    const connect = connectPacket();
    await sendInPieces(conn, connect, []);
    const topic = Buffer.from('\u0000\u001adevices/sensor-1/telemetry', 'latin1');
    const declared = 64 * MiB;
    conn.client.write(Buffer.concat([fixedHeader(0x30, declared), topic]));
    // Keep streaming the body, as the attacker would; the guard must already be gone.
    conn.client.write(Buffer.alloc(4 * MiB, 0x61));
    await Promise.all([conn.closed, conn.clientClosed]);
    expect(conn.violations).toEqual([{ reason: 'packet-too-large', declaredBytes: declared }]);
    expect(conn.received().equals(connect)).toBe(true);
    expect(conn.socket.destroyed).toBe(true);
    expect(conn.guarded.destroyed).toBe(true);
    expect(conn.socket.bytesRead).toBeLessThan(MiB);
  });

  it('closes on one byte over the limit, declared across chunk boundaries', async () => {
    const conn = await connectGuarded({ maxPacketBytes: 1000 });
    const header = fixedHeader(0x30, 1001);
    conn.client.write(header.subarray(0, 1));
    await conn.waitForBytes(1);
    conn.client.write(header.subarray(1, 2));
    await conn.waitForBytes(2);
    conn.client.write(header.subarray(2));
    await conn.closed;
    expect(conn.violations).toEqual([{ reason: 'packet-too-large', declaredBytes: 1001 }]);
    expect(conn.received()).toHaveLength(2);
  });

  it('closes on a Remaining Length with a fifth byte, whole or split', async () => {
    for (const cuts of [[], [2, 3, 4], [5]]) {
      const conn = await connectGuarded();
      const data = Buffer.from([0xe0, 0x00, 0x30, 0xff, 0xff, 0xff, 0xff, 0x01]);
      const points = [0, ...cuts, data.length];
      for (let i = 1; i < points.length - 1; i++) {
        conn.client.write(data.subarray(points[i - 1], points[i]));
        await conn.waitForBytes(points[i] as number);
      }
      conn.client.write(data.subarray(points.at(-2)));
      await Promise.all([conn.closed, conn.clientClosed]);
      expect(conn.violations).toEqual([{ reason: 'malformed-length' }]);
      expect(conn.received().equals(data.subarray(0, points.at(-2)))).toBe(true);
    }
  });

  it('holds back the socket while nobody reads, and delivers everything when read', async () => {
    const conn = await connectGuarded({ paused: true, maxPacketBytes: MiB });
    const paused = new Promise<void>((resolve) => conn.socket.once('pause', () => resolve()));
    const data = Buffer.concat(Array.from({ length: 64 }, (_, i) => publishPacket(`devices/d/${i}`, 64 * 1024, 1)));
    conn.client.write(data);
    await paused;
    // Paused with one socket read or so buffered, not the 4 MiB sent.
    expect(conn.guarded.readableLength).toBeLessThan(MiB);
    expect(conn.socket.bytesRead).toBeLessThan(data.length);
    conn.startReading();
    await conn.waitForBytes(data.length);
    expect(conn.received().equals(data)).toBe(true);
    await closeGuarded(conn);
  });

  it('writes through to the socket, whole packets from mqtt-packet included', async () => {
    const conn = await connectGuarded();
    const fromGuard: Buffer[] = [];
    conn.client.on('data', (chunk: Buffer) => fromGuard.push(chunk));
    const packets: Packet[] = [
      { cmd: 'connack', returnCode: 0, sessionPresent: false },
      { cmd: 'publish', topic: 'devices/sensor-1/inference', payload: Buffer.from('{"score":1}'), qos: 1, messageId: 3, retain: false, dup: false },
      { cmd: 'suback', messageId: 1, granted: [1] },
    ];
    for (const packet of packets) writeToStream(packet, conn.guarded);
    conn.guarded.write(Buffer.from('tail'));
    const expected = Buffer.concat([...packets.map((p) => generate(p)), Buffer.from('tail')]);
    const clientEnded = new Promise<void>((resolve) => conn.client.once('end', () => resolve()));
    conn.guarded.end();
    await clientEnded;
    expect(Buffer.concat(fromGuard).equals(expected)).toBe(true);
    await closeGuarded(conn);
  });

  it('delivers the last packets of a client that sends and ends at once, then closes', async () => {
    const conn = await connectGuarded({ paused: true });
    const data = Buffer.concat([connectPacket(), publishPacket('devices/sensor-1/telemetry', 100, 1), generate({ cmd: 'disconnect' })]);
    const ended = new Promise<void>((resolve) => conn.guarded.once('end', () => resolve()));
    conn.client.end(data);
    await new Promise<void>((resolve) => conn.socket.once('close', () => resolve()));
    conn.startReading();
    await Promise.all([ended, conn.closed]);
    expect(conn.received().equals(data)).toBe(true);
    expect(conn.errors).toEqual([]);
  });

  // aedes reads no further while a packet is being handled: after a CONNECT, not before the
  // connection is accepted. A client that sends CONNECT and PINGREQ and ends at once has its
  // socket closed by then, while the guard still holds its end for the reader; aedes then
  // writes the CONNACK, and the PINGRESP, whose write() result it waits on.
  it('closes when written to after the socket closed with bytes left for the reader (a late CONNACK)', async () => {
    const conn = await connectGuarded({ paused: true });
    conn.client.end(Buffer.concat([connectPacket(), generate({ cmd: 'pingreq' })]));
    await new Promise<void>((resolve) => conn.socket.once('close', () => resolve()));
    expect(conn.guarded.destroyed).toBe(false); // kept for the reader
    writeToStream({ cmd: 'connack', returnCode: 0, sessionPresent: false }, conn.guarded);
    // Closed at once, so aedes learns the connection is gone; not a false from write() with a
    // 'drain' to wait for, which a closed socket never emits.
    expect(conn.guarded.destroyed).toBe(true);
    expect(writeToStream({ cmd: 'pingresp' }, conn.guarded)).toBe(false);
    await conn.closed;
    expect(conn.errors.map((e) => e.message)).toEqual(['write after the socket was closed']);
  });

  it("lets a writer waiting for 'drain' go on when the socket closes after the peer ended", async () => {
    const conn = await connectGuarded({ paused: true });
    conn.client.pause();
    // More than loopback's socket buffers hold while the peer does not read.
    expect(conn.guarded.write(Buffer.alloc(16 * MiB))).toBe(false);
    let drained = false;
    conn.guarded.once('drain', () => (drained = true));
    // The peer ends and then reads everything: the socket flushes while ending, which emits no
    // 'drain', and closes.
    conn.client.end(connectPacket());
    conn.client.resume();
    await new Promise<void>((resolve) => conn.socket.once('close', () => resolve()));
    expect(drained).toBe(true);
    expect(conn.guarded.write(Buffer.from('late'))).toBe(false);
    expect(conn.guarded.destroyed).toBe(true);
    await conn.closed;
  });

  it('closes the socket when the wrapper is destroyed (aedes closing a client)', async () => {
    const conn = await connectGuarded();
    conn.guarded.destroy();
    await Promise.all([conn.closed, conn.clientClosed]);
    expect(conn.socket.destroyed).toBe(true);
    expect(conn.violations).toEqual([]);
  });

  it('passes a socket error on and closes', async () => {
    const conn = await connectGuarded();
    const boom = new Error('boom');
    conn.socket.destroy(boom);
    await conn.closed;
    expect(conn.errors).toEqual([boom]);
    expect(conn.guarded.destroyed).toBe(true);
  });

  it('closes when the peer resets the connection', async () => {
    const conn = await connectGuarded();
    conn.client.resetAndDestroy();
    await conn.closed;
    expect(conn.guarded.destroyed).toBe(true);
  });

  it('answers a CONNECT with an unsupported protocol level with CONNACK 1, then closes (MQTT-3.1.2-2)', async () => {
    for (const level of [2, 5, 6]) {
      const conn = await connectGuarded();
      const answer: Buffer[] = [];
      conn.client.on('data', (chunk: Buffer) => answer.push(chunk));
      const connect = connectPacket();
      // Byte 2 + 2 + 4 is the level of an MQTT 3.1.1 CONNECT with a one-byte Remaining Length.
      connect[8] = level;
      conn.client.write(connect);
      await Promise.all([conn.closed, conn.clientClosed]);
      expect(Buffer.concat(answer)).toEqual(Buffer.from([0x20, 0x02, 0x00, 0x01]));
      expect(conn.violations).toEqual([{ reason: 'unsupported-protocol-level', protocolLevel: level }]);
    }
    // Levels 3 and 4 pass untouched.
    const conn = await connectGuarded();
    await sendInPieces(conn, connectPacket(), [3, 7, 8, 9]);
    expect(conn.violations).toEqual([]);
    await closeGuarded(conn);
  });

  it('holds a QoS 1/2 PUBLISH while the pacer says wait, and passes QoS 0 and other packets at once', async () => {
    const conn = await connectGuarded();
    await sendInPieces(conn, connectPacket(), []);
    let tokens = 1;
    const asked: number[] = [];
    conn.guarded.pacePublishes(() => {
      asked.push(tokens);
      if (tokens > 0) {
        tokens--;
        return 0;
      }
      return 40;
    });
    const qos1 = publishPacket('devices/sensor-1/telemetry', 10, 1);
    const qos0 = publishPacket('devices/sensor-1/telemetry', 10, 0);
    const ping = generate({ cmd: 'pingreq' });
    const before = connectPacket().length;
    // One write: the first QoS 1 publish passes, the second is held, and what follows it waits too.
    conn.client.write(Buffer.concat([qos0, qos1, ping, qos1, qos0, ping]));
    await conn.waitForBytes(before + qos0.length + qos1.length + ping.length);
    expect(conn.received().length).toBe(before + qos0.length + qos1.length + ping.length);
    expect(asked).toEqual([1, 0]);
    tokens = 1; // the bucket refills meanwhile
    await conn.waitForBytes(before + 2 * (qos0.length + qos1.length + ping.length));
    expect(conn.received().subarray(before)).toEqual(Buffer.concat([qos0, qos1, ping, qos1, qos0, ping]));
    expect(asked).toEqual([1, 0, 1]);
    await closeGuarded(conn);
  });

  it('stops reading the socket while a publish is held, so the device waits in TCP buffers', async () => {
    const conn = await connectGuarded();
    await sendInPieces(conn, connectPacket(), []);
    let open = false;
    let asked = 0;
    let heldFiveTimes: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (heldFiveTimes = resolve));
    conn.guarded.pacePublishes(() => {
      if (open) return 0;
      if (++asked === 5) heldFiveTimes();
      return 20;
    });
    const qos1 = publishPacket('devices/sensor-1/telemetry', 1_000, 1);
    // More than loopback's socket buffers hold, so the rest must stay with the sender.
    const burst = Buffer.concat(Array.from({ length: 32_000 }, () => qos1));
    conn.client.write(burst);
    await held;
    expect(conn.received().length).toBe(connectPacket().length);
    expect(conn.socket.isPaused()).toBe(true);
    expect(conn.socket.bytesRead).toBeLessThan(connectPacket().length + burst.length);
    expect(conn.client.writableLength).toBeGreaterThan(0);
    open = true;
    await conn.waitForBytes(connectPacket().length + burst.length);
    expect(conn.received().subarray(connectPacket().length).equals(burst)).toBe(true);
    await closeGuarded(conn);
  });

  it('delivers held publishes of a client that ends while held, then closes', async () => {
    const conn = await connectGuarded();
    await sendInPieces(conn, connectPacket(), []);
    let calls = 0;
    conn.guarded.pacePublishes(() => (calls++ === 0 ? 30 : 0));
    const qos1 = publishPacket('devices/sensor-1/telemetry', 10, 1);
    conn.client.end(Buffer.concat([qos1, qos1]));
    await conn.closed;
    expect(conn.received().subarray(connectPacket().length)).toEqual(Buffer.concat([qos1, qos1]));
  });

  it('refuses a bad limit', () => {
    const socket = new net.Socket();
    expect(() => guardPackets(socket, { maxPacketBytes: -1 })).toThrow(RangeError);
    expect(() => guardPackets(socket, { maxPacketBytes: 1.5 })).toThrow(RangeError);
    socket.destroy();
  });
});

// Properties. A reference scanner over the whole input, written plainly, tells where (if at
// all) the guard must stop.

type Verdict = { ok: true } | { ok: false; atByte: number; violation: PacketViolation };

function referenceVerdict(data: Buffer, maxPacketBytes: number): Verdict {
  let i = 0;
  let first = true;
  while (i < data.length) {
    const isConnect = first && (data[i] as number) >> 4 === 1;
    first = false;
    i += 1; // type and flags
    let length = 0;
    for (let n = 0; ; n++) {
      if (i >= data.length) return { ok: true };
      const byte = data[i] as number;
      length += (byte & 0x7f) * 128 ** n;
      if (byte >= 0x80 && n === 3) return { ok: false, atByte: i, violation: { reason: 'malformed-length' } };
      i += 1;
      if (byte < 0x80) break;
    }
    if (length > maxPacketBytes) return { ok: false, atByte: i - 1, violation: { reason: 'packet-too-large', declaredBytes: length } };
    if (isConnect && length >= 2 && i + 1 < data.length) {
      // The first CONNECT's protocol level (MQTT-3.1.2-2), when its name is at most 6 bytes.
      const nameBytes = ((data[i] as number) << 8) | (data[i + 1] as number);
      const at = i + 2 + nameBytes;
      if (nameBytes <= 6 && at < i + length && at < data.length && ![3, 4].includes(data[at] as number)) {
        return { ok: false, atByte: at, violation: { reason: 'unsupported-protocol-level', protocolLevel: data[at] as number } };
      }
    }
    i += length;
  }
  return { ok: true };
}

const topicArb = fc.stringMatching(/^devices\/[a-z0-9]{1,8}(\/[a-z]{1,6}){0,2}$/);
const packetArb: fc.Arbitrary<Packet> = fc.oneof(
  fc.record({
    cmd: fc.constant('publish' as const),
    topic: topicArb,
    payload: fc.oneof(
      fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
      fc.integer({ min: 0, max: 40_000 }).map((n) => Buffer.alloc(n, 0xff)),
    ),
    qos: fc.constantFrom(0 as const, 1 as const, 2 as const),
    messageId: fc.integer({ min: 1, max: 65_535 }),
    retain: fc.boolean(),
    dup: fc.constant(false),
  }),
  fc.constantFrom<Packet>({ cmd: 'pingreq' }, { cmd: 'pingresp' }, { cmd: 'disconnect' }),
  fc.integer({ min: 1, max: 65_535 }).map((messageId): Packet => ({ cmd: 'puback', messageId })),
  fc.record({ messageId: fc.integer({ min: 1, max: 65_535 }), topic: topicArb }).map(
    ({ messageId, topic }): Packet => ({ cmd: 'subscribe', messageId, subscriptions: [{ topic: `${topic}/#`, qos: 1 }] }),
  ),
  fc.string({ minLength: 1, maxLength: 23 }).map((clientId): Packet => ({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive: 60 })),
);

/** Cut points as fractions of the input, so they shrink and fit any length. */
const cutsArb = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 12 });
const toCuts = (fractions: number[], length: number): number[] => fractions.map((f) => Math.floor(f * length));

describe('guardPackets properties', () => {
  it('passes any sequence of valid packets, chunked any way, unchanged', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(packetArb, { minLength: 1, maxLength: 12 }), cutsArb, async (packets, fractions) => {
        const data = Buffer.concat(packets.map((p) => generate(p)));
        const conn = await connectGuarded({ maxPacketBytes: 64 * 1024 });
        try {
          await sendInPieces(conn, data, toCuts(fractions, data.length));
          expect(conn.received().equals(data)).toBe(true);
          expect(conn.violations).toEqual([]);
        } finally {
          await closeGuarded(conn);
        }
      }),
      { numRuns: 60 },
    );
  });

  it('on garbage either passes every byte or closes exactly where the headers say', async () => {
    const maxPacketBytes = 300;
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 600 }), cutsArb, async (bytes, fractions) => {
        const data = Buffer.from(bytes);
        const verdict = referenceVerdict(data, maxPacketBytes);
        const conn = await connectGuarded({ maxPacketBytes });
        try {
          if (verdict.ok) {
            await sendInPieces(conn, data, toCuts(fractions, data.length));
            expect(conn.received().equals(data)).toBe(true);
            expect(conn.violations).toEqual([]);
            return;
          }
          // Send the pieces before the offending byte, then the piece holding it.
          const cuts = toCuts(fractions, data.length).filter((c) => c <= verdict.atByte);
          const lastCut = Math.max(0, ...cuts);
          await sendInPieces(conn, data.subarray(0, lastCut), cuts);
          conn.client.write(data.subarray(lastCut));
          await conn.closed;
          expect(conn.violations).toEqual([verdict.violation]);
          const received = conn.received();
          // Whatever left the guard is input bytes from before the offending header byte.
          expect(received.length).toBeGreaterThanOrEqual(lastCut);
          expect(received.length).toBeLessThanOrEqual(verdict.atByte);
          expect(received.equals(data.subarray(0, received.length))).toBe(true);
        } finally {
          await closeGuarded(conn);
        }
      }),
      { numRuns: 150 },
    );
  });
});

// openssl makes the throwaway certificate; .ci/run installs it on a fresh machine.
describe('guardPackets over TLS', () => {
  let dir: string;
  let tlsServer: tls.Server;
  let tlsPort: number;
  let cert: Buffer;
  const accepted: Array<(socket: tls.TLSSocket) => void> = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'outpost-guard-tls-'));
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')],
      { stdio: 'ignore' },
    );
    cert = readFileSync(join(dir, 'cert.pem'));
    tlsServer = tls.createServer({ cert, key: readFileSync(join(dir, 'key.pem')) }, (socket) => accepted.shift()?.(socket));
    await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve));
    tlsPort = (tlsServer.address() as AddressInfo).port;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => tlsServer.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  async function connectTls(maxPacketBytes: number) {
    const socketPromise = new Promise<tls.TLSSocket>((resolve) => accepted.push(resolve));
    const client = tls.connect({ port: tlsPort, host: '127.0.0.1', servername: 'localhost', ca: cert });
    await new Promise<void>((resolve, reject) => client.once('secureConnect', resolve).once('error', reject));
    const socket = await socketPromise;
    const violations: PacketViolation[] = [];
    const guarded = guardPackets(socket, { maxPacketBytes, onViolation: (v) => violations.push(v) });
    expect(guarded.socket).toBe(socket);
    return { client, socket, guarded, violations, ...observe(client, guarded, false) };
  }

  it('passes packets both ways and closes on an oversized one', async () => {
    const conn = await connectTls(DEFAULT_MAX);
    const data = Buffer.concat([connectPacket(), publishPacket('devices/sensor-1/telemetry', 5000, 1)]);
    await sendInPieces(conn, data, [1, 2, 3, 40, 41]);
    expect(conn.received().equals(data)).toBe(true);

    const fromGuard = new Promise<Buffer>((resolve) => conn.client.once('data', resolve));
    const connack = generate({ cmd: 'connack', returnCode: 0, sessionPresent: false });
    conn.guarded.write(connack);
    expect((await fromGuard).equals(connack)).toBe(true);

    conn.client.write(fixedHeader(0x30, 64 * MiB));
    conn.client.write(Buffer.alloc(MiB));
    await Promise.all([conn.closed, conn.clientClosed]);
    expect(conn.violations).toEqual([{ reason: 'packet-too-large', declaredBytes: 64 * MiB }]);
    expect(conn.received().equals(data)).toBe(true);
    expect(conn.socket.destroyed).toBe(true);
  });
});
