// The fleet at a glance: every agent, how it is, what it buffers and how fast data comes in.
// The first paint comes from GET /api/agents, then every `agents` event replaces the list.
import { useState } from 'preact/hooks';
import type { AgentListResponse, AgentSummary, AnomalyListResponse, Anomaly, ServerEvent } from '../api-types.js';
import { Empty, ErrorBanner, Labels, LiveBadge, Meter, Reasons, StatusBadge } from '../components/common.js';
import { formatAgo, formatBytes, formatCount, formatPercent, formatRate, formatTime, formatValue } from '../format.js';
import { useLiveEvents, useNow, useResource, visibleError } from '../hooks.js';
import { routeHref } from '../route.js';
import { anomaliesPath, fleetEventsUrl } from '../urls.js';

/** What the list shows of an anomaly, from the API or an `anomaly` event. */
type AnomalyRow = Pick<Anomaly, 'agentId' | 'deviceId' | 'ts' | 'score' | 'model'>;

/** Anomalies listed on the fleet page. */
const RECENT_ANOMALIES = 8;

function bufferedRecords(agent: AgentSummary): number {
  return agent.buffer === null ? 0 : Object.values(agent.buffer.records).reduce((n, r) => n + (r ?? 0), 0);
}

/** The model an agent runs (`name@version`), as its heartbeat reports it. */
function modelOf(agent: AgentSummary): string | undefined {
  return agent.versions?.model ?? agent.inference?.model;
}

/** A desired state the agent refused (a rollout's change it would not run), with the code and the rollout. */
function DesiredRefusal({ agent }: { agent: AgentSummary }) {
  const desired = agent.desired;
  if (desired?.status !== 'refused') return null;
  const what = `refused ${desired.code ?? 'the desired state'}`;
  return (
    <span class="reason" title={desired.reason} data-testid="agent-desired-refused">
      {desired.origin === null ? what : <a href={routeHref({ view: 'rollout', rolloutId: desired.origin.rolloutId })}>{what}</a>}
    </span>
  );
}

function AgentRow({ agent, nowMs }: { agent: AgentSummary; nowMs: number }) {
  const href = routeHref({ view: 'agent', agentId: agent.agentId });
  const fill = agent.buffer === null ? undefined : agent.buffer.bytes / agent.buffer.maxBytes;
  return (
    <tr data-testid={`agent-row-${agent.agentId}`} data-status={agent.status}>
      <td>
        <a class="id" href={href}>
          {agent.agentId}
        </a>
      </td>
      <td>
        <StatusBadge status={agent.status} />
        <Reasons reasons={agent.reasons} />
      </td>
      <td>
        <Labels labels={agent.labels} />
      </td>
      <td>
        {agent.versions === null ? (
          <span class="muted">–</span>
        ) : (
          <div class="versions">
            <span>agent {agent.versions.agent}</span>
            <span class="labels">
              <span class="chip" data-testid="agent-model" data-model={modelOf(agent) ?? ''}>
                <span class="chip-key">model</span>
                {modelOf(agent) ?? '–'}
              </span>
              <span class="chip" data-testid="agent-config" data-config={agent.versions.config ?? ''}>
                <span class="chip-key">config</span>
                {agent.versions.config ?? '–'}
              </span>
            </span>
            <DesiredRefusal agent={agent} />
          </div>
        )}
      </td>
      <td class="num">
        {agent.buffer === null || fill === undefined ? (
          <span class="muted">–</span>
        ) : (
          <span class="buffer" data-testid="buffer" data-records={bufferedRecords(agent)}>
            <span>
              {formatCount(bufferedRecords(agent))} rec · {formatPercent(fill)}
            </span>
            <Meter ratio={fill} label={`${formatBytes(agent.buffer.bytes)} of ${formatBytes(agent.buffer.maxBytes)}`} />
          </span>
        )}
      </td>
      <td class="num">{formatRate(agent.ingest?.acceptedPerS)}</td>
      <td class="num">{agent.ingest === null ? '–' : formatCount(agent.ingest.devicesConnected)}</td>
      <td class="num" title={agent.lastSeenMs === null ? undefined : new Date(agent.lastSeenMs).toISOString()}>
        {formatAgo(agent.lastSeenMs, nowMs)}
      </td>
    </tr>
  );
}

function Tiles({ agents }: { agents: readonly AgentSummary[] }) {
  const count = (status: AgentSummary['status']) => agents.filter((a) => a.status === status).length;
  const rate = agents.reduce((n, a) => n + (a.ingest?.acceptedPerS ?? 0), 0);
  const devices = agents.reduce((n, a) => n + (a.ingest?.devicesConnected ?? 0), 0);
  return (
    <div class="tiles">
      <div class="tile">
        <span class="tile-value" data-testid="agents-total">
          {agents.length}
        </span>
        <span class="tile-label">agents</span>
      </div>
      <div class="tile tile-online">
        <span class="tile-value">{count('online')}</span>
        <span class="tile-label">online</span>
      </div>
      <div class="tile tile-degraded">
        <span class="tile-value">{count('degraded')}</span>
        <span class="tile-label">degraded</span>
      </div>
      <div class="tile tile-offline">
        <span class="tile-value">{count('offline') + count('unknown')}</span>
        <span class="tile-label">offline / unknown</span>
      </div>
      <div class="tile">
        <span class="tile-value">{formatCount(devices)}</span>
        <span class="tile-label">devices connected</span>
      </div>
      <div class="tile">
        <span class="tile-value">{formatRate(rate)}</span>
        <span class="tile-label">messages in</span>
      </div>
    </div>
  );
}

function RecentAnomalies({ anomalies, error }: { anomalies: readonly AnomalyRow[]; error: Error | undefined }) {
  return (
    <section class="panel">
      <h2>Recent anomalies</h2>
      <ErrorBanner error={error} what="anomalies" />
      {anomalies.length === 0 && error === undefined ? (
        <Empty>No anomalies reported.</Empty>
      ) : (
        <ul class="anomaly-list" data-testid="fleet-anomalies">
          {anomalies.map((a) => (
            <li key={`${a.agentId}/${a.deviceId}/${a.ts}/${a.model.version}`}>
              <span class="anomaly-dot" />
              <span class="muted">{formatTime(a.ts)}</span>
              <a href={routeHref({ view: 'device', agentId: a.agentId, deviceId: a.deviceId })}>
                {a.agentId} / {a.deviceId}
              </a>
              <span>score {formatValue(a.score)}</span>
              <span class="muted">
                {a.model.name} {a.model.version}
              </span>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

/** The fleet page (`#/`). */
export function FleetView() {
  const nowMs = useNow();
  const initial = useResource<AgentListResponse>('/api/agents');
  const recent = useResource<AnomalyListResponse>(anomaliesPath({ limit: RECENT_ANOMALIES }));
  const [live, setLive] = useState<AgentSummary[] | undefined>(undefined);
  const [liveAnomalies, setLiveAnomalies] = useState<AnomalyRow[]>([]);
  const status = useLiveEvents(fleetEventsUrl(), (event: ServerEvent) => {
    if (event.type === 'agents') setLive(event.data.agents);
    else if (event.type === 'anomaly') setLiveAnomalies((list) => [event.data, ...list].slice(0, RECENT_ANOMALIES));
  });
  const agents = [...(live ?? initial.data?.agents ?? [])].sort((a, b) => (a.agentId < b.agentId ? -1 : a.agentId > b.agentId ? 1 : 0));
  const anomalies = mergeAnomalies(liveAnomalies, recent.data?.anomalies ?? []).slice(0, RECENT_ANOMALIES);
  const loaded = live !== undefined || initial.data !== undefined;

  return (
    <main>
      <div class="title-row">
        <h1>Fleet</h1>
        <LiveBadge status={status} />
      </div>
      {loaded && <Tiles agents={agents} />}
      <section class="panel">
        <h2>Agents</h2>
        {!loaded && <ErrorBanner error={visibleError(initial.error)} what="the agents" />}
        {!loaded ? (
          initial.error === undefined && <Empty>Loading agents…</Empty>
        ) : agents.length === 0 ? (
          <Empty>No agent has reported yet. Agents appear here with their first heartbeat or uplink batch.</Empty>
        ) : (
          <div class="table-wrap">
            <table data-testid="agents-table">
              <thead>
                <tr>
                  <th>Agent</th>
                  <th>Status</th>
                  <th>Labels</th>
                  <th>Versions</th>
                  <th class="num">Buffer</th>
                  <th class="num">Ingest</th>
                  <th class="num">Devices</th>
                  <th class="num">Last seen</th>
                </tr>
              </thead>
              <tbody>
                {agents.map((agent) => (
                  <AgentRow key={agent.agentId} agent={agent} nowMs={nowMs} />
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
      <RecentAnomalies anomalies={anomalies} error={visibleError(recent.error)} />
    </main>
  );
}

/** Newest first, each anomaly once. */
export function mergeAnomalies(a: readonly AnomalyRow[], b: readonly AnomalyRow[]): AnomalyRow[] {
  const seen = new Set<string>();
  const out: AnomalyRow[] = [];
  for (const x of [...a, ...b].sort((p, q) => q.ts - p.ts)) {
    const key = `${x.agentId}/${x.deviceId}/${x.ts}/${x.model.name}/${x.model.version}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(x);
  }
  return out;
}
