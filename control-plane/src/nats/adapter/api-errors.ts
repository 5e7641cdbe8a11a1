import { JetStreamApiError } from '@nats-io/jetstream';

/** True when `err` is a JetStream API error with one of `codes` (JetStreamApiCodes). */
export function isApiError(err: unknown, ...codes: number[]): err is JetStreamApiError {
  return err instanceof JetStreamApiError && codes.includes(err.code);
}
