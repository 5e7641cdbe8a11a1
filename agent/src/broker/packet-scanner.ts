// The MQTT byte-stream scanner of the packet guard (packet-guard.ts): how much each packet
// declares, where a QoS 1/2 PUBLISH starts, and the CONNECT's protocol level, read
// incrementally without copying packet bodies.

/** MQTT 3.1.1 section 2.2.3: the Remaining Length takes at most four bytes. */
const MAX_REMAINING_LENGTH_BYTES = 4;
const PACKET_TYPE_CONNECT = 1;
const PACKET_TYPE_PUBLISH = 3;
/** Protocol levels aedes speaks: 3 (MQTT 3.1) and 4 (MQTT 3.1.1). */
const SUPPORTED_PROTOCOL_LEVELS: ReadonlySet<number> = new Set([3, 4]);
/** CONNACK, Remaining Length 2, no session present, return code 1 (unacceptable protocol level). */
export const CONNACK_UNACCEPTABLE_PROTOCOL = Buffer.from([0x20, 0x02, 0x00, 0x01]);
/** Longest protocol name of MQTT 3.x ("MQIsdp"); a longer declared name is left to aedes to refuse. */
const MAX_PROTOCOL_NAME_BYTES = 6;

export type PacketViolation =
  | { reason: 'packet-too-large'; declaredBytes: number }
  | { reason: 'malformed-length' }
  | { reason: 'unsupported-protocol-level'; protocolLevel: number };

/**
 * Asked before each QoS 1/2 PUBLISH is passed on: 0 lets it through (a token was taken),
 * otherwise the ms to hold the stream before asking again.
 */
export type PublishPacer = () => number;

type Phase = 'type' | 'length' | 'body';

/** What the scan of a chunk stopped at. */
export type ScanStop =
  | { type: 'violation'; violation: PacketViolation }
  /** A QoS 1/2 PUBLISH starts at `offset` and must wait `pauseMs`. */
  | { type: 'hold'; offset: number; pauseMs: number };

/**
 * Incremental MQTT scanner: byte 1 (type and flags), the Remaining Length varint (MQTT 3.1.1
 * section 2.2.3), then that many body bytes skipped uncopied, except the first few of the
 * first packet (the CONNECT's protocol name and level). Its state survives any split of the
 * byte stream into chunks, and a hold: scanning resumes at the held packet's first byte.
 */
export function createScanner(maxPacketBytes: number, pacer: () => PublishPacer | undefined): (chunk: Buffer, from: number) => ScanStop | undefined {
  let phase: Phase = 'type';
  let remaining = 0;
  let multiplier = 1;
  let lengthBytes = 0;
  let packets = 0;
  /** The first body bytes of the first packet while it is a CONNECT: name length, name, level. */
  let connectHead: number[] | undefined;

  /** Called with each body byte of the first CONNECT until the level is known. */
  const checkConnect = (byte: number): ScanStop | undefined => {
    const head = connectHead!;
    head.push(byte);
    if (head.length < 2) return undefined;
    const nameBytes = (head[0]! << 8) | head[1]!;
    if (nameBytes > MAX_PROTOCOL_NAME_BYTES) {
      connectHead = undefined;
      return undefined;
    }
    if (head.length < 2 + nameBytes + 1) return undefined;
    connectHead = undefined;
    const level = head[2 + nameBytes]!;
    return SUPPORTED_PROTOCOL_LEVELS.has(level) ? undefined : { type: 'violation', violation: { reason: 'unsupported-protocol-level', protocolLevel: level } };
  };

  return (chunk, from) => {
    const end = chunk.length;
    let i = from;
    while (i < end) {
      if (phase === 'body') {
        if (connectHead !== undefined) {
          const stop = checkConnect(chunk[i] as number);
          i += 1;
          remaining -= 1;
          if (remaining === 0) {
            connectHead = undefined;
            phase = 'type';
          }
          if (stop !== undefined) return stop;
          continue;
        }
        const skip = Math.min(remaining, end - i);
        i += skip;
        remaining -= skip;
        if (remaining === 0) phase = 'type';
      } else if (phase === 'type') {
        const byte = chunk[i] as number;
        const type = byte >> 4;
        if (type === PACKET_TYPE_PUBLISH && ((byte >> 1) & 0x03) > 0) {
          const pauseMs = pacer()?.() ?? 0;
          if (pauseMs > 0) return { type: 'hold', offset: i, pauseMs };
        }
        connectHead = packets === 0 && type === PACKET_TYPE_CONNECT ? [] : undefined;
        packets += 1;
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
          if (lengthBytes === MAX_REMAINING_LENGTH_BYTES) return { type: 'violation', violation: { reason: 'malformed-length' } };
          multiplier *= 128;
        } else if (remaining > maxPacketBytes) {
          return { type: 'violation', violation: { reason: 'packet-too-large', declaredBytes: remaining } };
        } else {
          phase = remaining === 0 ? 'type' : 'body';
          if (remaining === 0) connectHead = undefined;
        }
      }
    }
    return undefined;
  };
}
