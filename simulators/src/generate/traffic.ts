import { ErrorCode, OutpostError } from '@outpost/shared';
import { formatTruthLine, type TruthLine } from '../anomalies/anomaly-types.js';
import type { ResolvedScenario } from '../scenario/resolve-scenario.js';
import { createDeviceGenerator, type DeviceGenerator, type GeneratedMessage } from './device-generator.js';

/** One line of recorded traffic or of ground truth, in generation order. */
export type TrafficLine =
  | { readonly kind: 'record'; readonly line: string; readonly message: GeneratedMessage }
  | { readonly kind: 'truth'; readonly line: string; readonly truth: TruthLine };

/**
 * One record line (FIXED CONTRACT, models train from it):
 * `{"ts":<epoch ms of sending>,"deviceId":"...","topic":"devices/<id>/telemetry","payload":<the JSON object sent>}`;
 * a malformed payload has `"raw":"<the string sent>"` instead of `"payload"`, and when its
 * bytes are not UTF-8, `raw` is their lossy UTF-8 reading and `"rawBase64"` the exact bytes.
 */
export function formatRecordLine(message: GeneratedMessage): string {
  const head = `{"ts":${message.sentAtMs},"deviceId":${JSON.stringify(message.deviceId)},"topic":${JSON.stringify(message.topic)}`;
  if (message.kind.type !== 'malformed') return `${head},"payload":${message.body as string}}`;
  if (typeof message.body === 'string') return `${head},"raw":${JSON.stringify(message.body)}}`;
  return `${head},"raw":${JSON.stringify(message.body.toString('utf8'))},"rawBase64":${JSON.stringify(message.body.toString('base64'))}}`;
}

/**
 * @throws OutpostError SCENARIO_INVALID when a device has no end (neither durationS nor count).
 */
export function assertBounded(scenario: ResolvedScenario): void {
  if (scenario.devices.some((d) => d.samples === undefined)) {
    const message = 'set durationS (--duration) or count (--count): a recording needs an end';
    throw new OutpostError(ErrorCode.SCENARIO_INVALID, `invalid scenario:\ndurationS: ${message}`, { details: { issues: [{ path: 'durationS', message }] } });
  }
}

interface Slot {
  generator: DeviceGenerator;
  /** Simulated send time of the device's next sample, ms after the scenario's start. */
  offsetMs: number;
}

const before = (a: Slot, b: Slot): boolean => a.offsetMs < b.offsetMs || (a.offsetMs === b.offsetMs && a.generator.device.ordinal < b.generator.device.ordinal);

/** A binary min-heap of device slots ordered by next send time, then device ordinal. */
function createSlotHeap(slots: Slot[]) {
  const heap: Slot[] = [];
  const swap = (i: number, j: number): void => {
    [heap[i], heap[j]] = [heap[j] as Slot, heap[i] as Slot];
  };
  const up = (start: number): void => {
    let i = start;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i] as Slot, heap[parent] as Slot)) return;
      swap(i, parent);
      i = parent;
    }
  };
  const down = (start: number): void => {
    let i = start;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && before(heap[l] as Slot, heap[m] as Slot)) m = l;
      if (r < heap.length && before(heap[r] as Slot, heap[m] as Slot)) m = r;
      if (m === i) return;
      swap(i, m);
      i = m;
    }
  };
  for (const s of slots) {
    heap.push(s);
    up(heap.length - 1);
  }
  return {
    peek: (): Slot | undefined => heap[0],
    /** Re-sorts after the first slot's offset grew. */
    fixFirst: () => down(0),
    popFirst(): void {
      const last = heap.pop() as Slot;
      if (heap.length > 0) {
        heap[0] = last;
        down(0);
      }
    },
  };
}

/**
 * The whole traffic of a bounded scenario in simulated time, with no broker: every device's
 * messages merged by send time (then device order), and each ground-truth line right after the
 * sample that ends its episode. Deterministic: the same scenario gives the same lines, byte for
 * byte. Devices with bad credentials are left out (the broker would refuse them; they send
 * nothing).
 *
 * @throws OutpostError SCENARIO_INVALID when a device has no bound (neither durationS nor count).
 */
export function* generateTraffic(scenario: ResolvedScenario): Generator<TrafficLine> {
  assertBounded(scenario);
  const generators = scenario.devices.filter((d) => !d.badCredentials).map((d) => createDeviceGenerator(scenario, d));
  const heap = createSlotHeap(generators.filter((g) => !g.done).map((generator) => ({ generator, offsetMs: generator.device.phaseMs })));
  for (let slot = heap.peek(); slot !== undefined; slot = heap.peek()) {
    const { generator } = slot;
    const message = generator.next(Math.round(scenario.startTsMs + slot.offsetMs));
    yield { kind: 'record', line: formatRecordLine(message), message };
    for (const truth of generator.takeTruth()) yield { kind: 'truth', line: formatTruthLine(truth), truth };
    if (generator.done) {
      heap.popFirst();
    } else {
      slot.offsetMs = generator.device.phaseMs + generator.generated * generator.device.intervalMs;
      heap.fixFirst();
    }
  }
  for (const generator of generators) {
    for (const truth of generator.finish()) yield { kind: 'truth', line: formatTruthLine(truth), truth };
  }
}
