// Hand-encoded MQTT 3.1.1 frames for the bench's load generator (loadgen-worker.ts): a device
// connection costs the generator only a buffer copy and a few digits patched per message, so
// the generator's own CPU stays far below the system's under test. The payload is the bench's
// telemetry message (the shape of harness/devices.ts telemetryPayload) with its seq written
// right-aligned in a fixed-width field padded with spaces (JSON allows whitespace between
// tokens; leading zeros it does not), so every frame of a device has the same length.

/** MQTT 3.1.1 section 2.2.1 packet types. */
export const PacketType = { connack: 2, publish: 3, puback: 4, suback: 9, pingresp: 13 } as const;

/** Digits reserved for the device seq in the payload (up to 9,999,999,999). */
export const SEQ_WIDTH = 10;
/** Epoch ms has 13 digits until the year 2286. */
const TS_WIDTH = 13;
const SPACE = 0x20;
const ZERO = 0x30;

/** MQTT 3.1.1 section 2.2.3: the Remaining Length varint. */
export function encodeRemainingLength(length: number): Buffer {
  const bytes: number[] = [];
  let n = length;
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    bytes.push(byte);
  } while (n > 0);
  return Buffer.from(bytes);
}

function utf8Field(text: string): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  const out = Buffer.allocUnsafe(2 + bytes.length);
  out.writeUInt16BE(bytes.length, 0);
  bytes.copy(out, 2);
  return out;
}

function packet(firstByte: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([firstByte]), encodeRemainingLength(body.length), body]);
}

/** CONNECT, MQTT 3.1.1 (level 4), clean session, no credentials (the agent's bench config allows anonymous devices). */
export function connectFrame(clientId: string, keepaliveS: number): Buffer {
  const variable = Buffer.concat([utf8Field('MQTT'), Buffer.from([4, 0x02, keepaliveS >> 8, keepaliveS & 0xff])]);
  return packet(0x10, Buffer.concat([variable, utf8Field(clientId)]));
}

/** SUBSCRIBE of one filter at `qos` (MQTT-3.8.1-1: flags 0b0010). */
export function subscribeFrame(packetId: number, filter: string, qos: 0 | 1): Buffer {
  return packet(0x82, Buffer.concat([Buffer.from([packetId >> 8, packetId & 0xff]), utf8Field(filter), Buffer.from([qos])]));
}

export const DISCONNECT_FRAME = Buffer.from([0xe0, 0x00]);

/**
 * A QoS 1 PUBLISH of one device's telemetry with the places that change per message: packet
 * id, `ts`, `seq` and the last digit of the temperature (so readings are not all equal).
 */
export interface PublishTemplate {
  readonly frame: Buffer;
  readonly packetIdOffset: number;
  readonly tsOffset: number;
  readonly seqOffset: number;
  readonly temperatureDigitOffset: number;
}

export function publishTemplate(topic: string): PublishTemplate {
  const payload = `{"ts":${'0'.repeat(TS_WIDTH)},"seq":${' '.repeat(SEQ_WIDTH - 1)}0,"metrics":{"temperature":21.5,"humidity":40.25,"pressure":1013.2,"vibration":0.012,"current":1.52,"voltage":229.8}}`;
  const topicField = utf8Field(topic);
  const body = Buffer.concat([topicField, Buffer.from([0, 1]), Buffer.from(payload, 'utf8')]);
  const head = Buffer.concat([Buffer.from([0x32]), encodeRemainingLength(body.length)]);
  const frame = Buffer.concat([head, body]);
  const payloadOffset = head.length + topicField.length + 2;
  return {
    frame,
    packetIdOffset: head.length + topicField.length,
    tsOffset: payloadOffset + payload.indexOf('"ts":') + 5,
    seqOffset: payloadOffset + payload.indexOf('"seq":') + 6,
    temperatureDigitOffset: payloadOffset + payload.indexOf('21.5') + 3,
  };
}

/** Writes `value` (a non-negative integer) as ASCII digits right-aligned in `width` bytes, spaces before. */
export function writePaddedDigits(buf: Buffer, offset: number, width: number, value: number): void {
  let n = value;
  let i = offset + width - 1;
  do {
    buf[i--] = ZERO + (n % 10);
    n = Math.floor(n / 10);
  } while (n > 0 && i >= offset);
  if (n > 0) throw new RangeError(`${value} does not fit in ${width} digits`);
  while (i >= offset) buf[i--] = SPACE;
}

/** The 13 digits of an epoch-ms timestamp. */
export function timestampDigits(ms: number): Buffer {
  const out = Buffer.allocUnsafe(TS_WIDTH);
  writePaddedDigits(out, 0, TS_WIDTH, Math.floor(ms));
  return out;
}

/**
 * Fills `out` from `at` with copies of the template for packet ids and seqs from
 * `firstPacketId` / `firstSeq` on (ids wrap within 1..65535), all with the timestamp `ts`.
 */
export function fillPublishes(out: Buffer, at: number, t: PublishTemplate, count: number, firstPacketId: number, firstSeq: number, ts: Buffer): void {
  const len = t.frame.length;
  let pid = firstPacketId;
  for (let k = 0; k < count; k++) {
    const base = at + k * len;
    t.frame.copy(out, base);
    out[base + t.packetIdOffset] = pid >> 8;
    out[base + t.packetIdOffset + 1] = pid & 0xff;
    ts.copy(out, base + t.tsOffset);
    const seq = firstSeq + k;
    writePaddedDigits(out, base + t.seqOffset, SEQ_WIDTH, seq);
    out[base + t.temperatureDigitOffset] = ZERO + (seq % 10);
    pid = pid === 0xffff ? 1 : pid + 1;
  }
}

/** One packet as read: its type, flags and body (a view into the received bytes, valid only during the call). */
export type PacketHandler = (type: number, flags: number, body: Buffer) => void;

/**
 * An incremental reader of the packets a broker sends: any split of the byte stream into
 * chunks is handled; whole packets in a chunk are read in place, without copies.
 */
export function createPacketReader(onPacket: PacketHandler): (chunk: Buffer) => void {
  let rest: Buffer | undefined;
  return (chunk) => {
    const data = rest === undefined ? chunk : Buffer.concat([rest, chunk]);
    rest = undefined;
    let i = 0;
    const end = data.length;
    while (i < end) {
      if (end - i < 2) break;
      const first = data[i]!;
      let length = 0;
      let multiplier = 1;
      let j = i + 1;
      let complete = false;
      while (j < end && j - i <= 4) {
        const byte = data[j++]!;
        length += (byte & 0x7f) * multiplier;
        multiplier *= 128;
        if ((byte & 0x80) === 0) {
          complete = true;
          break;
        }
      }
      if (!complete) {
        if (j - i > 4) throw new Error('malformed Remaining Length from the broker');
        break;
      }
      if (end - j < length) break;
      onPacket(first >> 4, first & 0x0f, data.subarray(j, j + length));
      i = j + length;
    }
    if (i < end) rest = Buffer.from(data.subarray(i));
  };
}
