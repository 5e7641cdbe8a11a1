import { ErrorCode, OutpostError } from './errors.js';

/** Device ids as the public contract allows them (DESIGN section 6). */
export const DEVICE_ID_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

/** What a device topic carries, read from its last level. */
export const DeviceTopicKind = {
  telemetry: 'telemetry',
  inference: 'inference',
  errors: 'errors',
} as const;
export type DeviceTopicKind = (typeof DeviceTopicKind)[keyof typeof DeviceTopicKind];

const DEVICES_PREFIX = 'devices/';

export function isValidDeviceId(deviceId: string): boolean {
  return DEVICE_ID_PATTERN.test(deviceId);
}

function assertDeviceId(deviceId: string): void {
  if (!isValidDeviceId(deviceId)) {
    throw new OutpostError(ErrorCode.TOPIC_INVALID, `invalid device id ${JSON.stringify(deviceId)}: must match ${DEVICE_ID_PATTERN}`);
  }
}

/** `devices/{deviceId}/telemetry`: device -> agent. */
export function telemetryTopic(deviceId: string): string {
  assertDeviceId(deviceId);
  return `${DEVICES_PREFIX}${deviceId}/telemetry`;
}

/** `devices/{deviceId}/inference`: agent -> local subscribers. */
export function inferenceTopic(deviceId: string): string {
  assertDeviceId(deviceId);
  return `${DEVICES_PREFIX}${deviceId}/inference`;
}

/** `devices/{deviceId}/errors`: agent -> device, one message per rejected publish. */
export function errorsTopic(deviceId: string): string {
  assertDeviceId(deviceId);
  return `${DEVICES_PREFIX}${deviceId}/errors`;
}

/** The prefix under which a device may publish and subscribe: `devices/{deviceId}/`. */
export function deviceTopicPrefix(deviceId: string): string {
  assertDeviceId(deviceId);
  return `${DEVICES_PREFIX}${deviceId}/`;
}

/** Subscription filter matching every device's telemetry (bridge mode). */
export const ALL_TELEMETRY_FILTER = `${DEVICES_PREFIX}+/telemetry`;

export interface ParsedDeviceTopic {
  deviceId: string;
  /** Levels after the device id, joined with '/': `telemetry`, `inference`, `errors` or anything else. */
  rest: string;
}

/**
 * Splits `devices/{deviceId}/{rest}`; returns undefined for any other topic, a device id
 * outside the contract, or an empty rest.
 */
export function parseDeviceTopic(topic: string): ParsedDeviceTopic | undefined {
  if (!topic.startsWith(DEVICES_PREFIX)) return undefined;
  const slash = topic.indexOf('/', DEVICES_PREFIX.length);
  if (slash < 0) return undefined;
  const deviceId = topic.slice(DEVICES_PREFIX.length, slash);
  const rest = topic.slice(slash + 1);
  if (!isValidDeviceId(deviceId) || rest.length === 0) return undefined;
  return { deviceId, rest };
}
