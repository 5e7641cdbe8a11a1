// Small building blocks shared by the views.
import type { ComponentChildren } from 'preact';
import type { AgentSummary } from '../api-types.js';
import type { StreamStatus } from '../event-stream.js';
import { formatPercent } from '../format.js';

const REASON_TEXT: Record<string, string> = {
  'heartbeat-missed': 'heartbeat missed',
  'no-heartbeat': 'no heartbeat yet',
  'buffer-backlog': 'buffer backlog',
  'buffer-nearly-full': 'buffer nearly full',
  'inference-down': 'inference down',
  'storage-failing': 'storage failing',
};

/** An agent's status reason (`heartbeat-missed`) as words; an unknown reason as it came. */
export function reasonText(reason: string): string {
  return REASON_TEXT[reason] ?? reason;
}

/** online / degraded / offline / unknown, coloured. */
export function StatusBadge({ status }: { status: AgentSummary['status'] }) {
  return (
    <span class={`badge status-${status}`} data-testid="status">
      <span class="dot" />
      {status}
    </span>
  );
}

/** Why an agent is not online, one chip per reason. */
export function Reasons({ reasons }: { reasons: readonly string[] }) {
  if (reasons.length === 0) return null;
  return (
    <span class="reasons">
      {reasons.map((r) => (
        <span class="reason" key={r}>
          {reasonText(r)}
        </span>
      ))}
    </span>
  );
}

/** An agent's labels as key/value chips, sorted by key. */
export function Labels({ labels }: { labels: Record<string, string> }) {
  const entries = Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1));
  if (entries.length === 0) return <span class="muted">–</span>;
  return (
    <span class="labels">
      {entries.map(([k, v]) => (
        <span class="chip" key={k}>
          <span class="chip-key">{k}</span>
          {v}
        </span>
      ))}
    </span>
  );
}

const STREAM_TEXT: Record<StreamStatus['state'], string> = {
  connecting: 'connecting…',
  live: 'live',
  reconnecting: 'reconnecting',
  unauthorized: 'token refused',
  closed: 'closed',
};

/** The state of the live feed, with the reason it is down. */
export function LiveBadge({ status }: { status: StreamStatus }) {
  const title = status.state === 'reconnecting' ? `${status.reason}; retrying in ${Math.round(status.inMs / 100) / 10} s` : undefined;
  return (
    <span class={`live live-${status.state}`} title={title} data-testid="live-status" data-state={status.state}>
      <span class="dot" />
      {STREAM_TEXT[status.state]}
    </span>
  );
}

/** A failed load, with the API's message; nothing when `error` is undefined. */
export function ErrorBanner({ error, what }: { error: Error | undefined; what: string }) {
  if (error === undefined) return null;
  return (
    <div class="banner banner-error" role="alert" data-testid="error">
      <strong>Could not load {what}.</strong> {error.message}
    </div>
  );
}

/** The placeholder of an empty or still-loading panel. */
export function Empty({ children }: { children: ComponentChildren }) {
  return (
    <div class="empty" data-testid="empty">
      {children}
    </div>
  );
}

/** A 0..1 ratio as a bar; `warnAt` and `badAt` colour it. */
export function Meter({ ratio, warnAt = 0.7, badAt = 0.9, label }: { ratio: number; warnAt?: number; badAt?: number; label?: string }) {
  const clamped = Math.min(1, Math.max(0, ratio));
  const level = clamped >= badAt ? 'bad' : clamped >= warnAt ? 'warn' : 'ok';
  return (
    <span class="meter" title={label ?? formatPercent(ratio)}>
      <span class={`meter-fill meter-${level}`} style={{ width: `${clamped * 100}%` }} />
    </span>
  );
}

/** Completeness as a figure coloured by how much is missing. */
export function Completeness({ ratio, testId }: { ratio: number | undefined; testId?: string }) {
  const level = ratio === undefined ? 'none' : ratio >= 0.999 ? 'ok' : ratio >= 0.95 ? 'warn' : 'bad';
  return (
    <span class={`completeness completeness-${level}`} data-testid={testId} data-ratio={ratio === undefined ? '' : ratio.toFixed(6)}>
      {formatPercent(ratio)}
    </span>
  );
}
