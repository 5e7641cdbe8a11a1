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
  const beat = (): void => {
    if (!transport.connected() || inFlight) return;
    inFlight = true;
    transport
      .publish(heartbeatSubject(agentId), Buffer.from(JSON.stringify(snapshot())), {})
      .catch((err: unknown) => logger.debug({ err }, 'heartbeat not published'))
      .finally(() => {
        inFlight = false;
      });
  };
  const timer = setInterval(beat, intervalMs);
  transport.onEvent((event) => {
    if (event.type === 'connected') beat();
  });
  return { close: () => clearInterval(timer) };
}
