import { heartbeatSubject, type Heartbeat, type Logger } from '@outpost/shared';
import type { UplinkTransport } from './nats-transport.js';

export interface HeartbeatOptions {
  agentId: string;
  intervalMs: number;
  transport: UplinkTransport;
  logger: Logger;
  /** Builds the current heartbeat; called once per beat. */
  snapshot: () => Heartbeat;
}

export interface HeartbeatSender {
  /** A heartbeat now (a state change the control plane should see at once), if connected. */
  beatNow(): void;
  /** Beats every `intervalMs` from now on (a config change). */
  setIntervalMs(intervalMs: number): void;
  close(): void;
}

/**
 * Publishes a heartbeat every `intervalMs` while connected, and at once on (re)connect so the
 * fleet sees an agent back without waiting a full interval. Heartbeats are state, not data:
 * one missed while disconnected is not buffered.
 */
export function startHeartbeats(options: HeartbeatOptions): HeartbeatSender {
  const { agentId, intervalMs, transport, logger, snapshot } = options;
  let inFlight = false;
  /** Asked for while one was in flight: the state changed since its snapshot, so send another after it. */
  let again = false;
  const beat = (): void => {
    if (!transport.connected()) return;
    if (inFlight) {
      again = true;
      return;
    }
    inFlight = true;
    transport
      .publish(heartbeatSubject(agentId), Buffer.from(JSON.stringify(snapshot())), {})
      .catch((err: unknown) => logger.debug({ err }, 'heartbeat not published'))
      .finally(() => {
        inFlight = false;
        if (again) {
          again = false;
          beat();
        }
      });
  };
  let timer = setInterval(beat, intervalMs);
  let closed = false;
  transport.onEvent((event) => {
    if (event.type === 'connected') beat();
  });
  return {
    beatNow: beat,
    setIntervalMs(next) {
      if (closed) return;
      clearInterval(timer);
      timer = setInterval(beat, next);
    },
    close() {
      closed = true;
      clearInterval(timer);
    },
  };
}
