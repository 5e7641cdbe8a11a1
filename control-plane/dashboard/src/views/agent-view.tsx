// One agent: its health and accounting, and every device it has sent, with the latest values
// (pushed by `telemetry` events) and the counts (refetched, throttled, while events flow).
import { useRef, useState } from 'preact/hooks';
import type { AgentDetailResponse, AgentSummary, DeviceListResponse, DeviceSummary, ServerEvent, SeriesPoint } from '../api-types.js';
import { errorCode } from '../api-client.js';
import { Completeness, Empty, ErrorBanner, Labels, LiveBadge, Meter, Reasons, StatusBadge } from '../components/common.js';
import { agentCompleteness, completeness, formatAgo, formatBytes, formatCount, formatPercent, formatRate, formatValue } from '../format.js';
import { useBatchedBump, useLiveEvents, useNow, useResource, useThrottledRefresh, visibleError } from '../hooks.js';
import { routeHref } from '../route.js';
import { agentEventsUrl, agentPath, devicesPath } from '../urls.js';

/** Counts are refetched at most this often while events arrive. */
const COUNTS_REFRESH_MS = 2_000;
/** Latest values are redrawn at most this often. */
const LATEST_REDRAW_MS = 250;
/** Metrics shown inline per device; the rest are counted. */
const INLINE_METRICS = 6;

function LatestValues({ metrics }: { metrics: Record<string, number> }) {
  const entries = Object.entries(metrics).sort(([a], [b]) => (a < b ? -1 : 1));
  const shown = entries.slice(0, INLINE_METRICS);
  return (
    <span class="values">
      {shown.map(([name, value]) => (
        <span class="value" key={name}>
          <span class="value-name">{name}</span>
          <span class="value-number" data-metric={name}>
            {formatValue(value)}
          </span>
        </span>
      ))}
      {entries.length > shown.length && <span class="muted">+{entries.length - shown.length} more</span>}
    </span>
  );
}

function DeviceRow({ agentId, device, latest, nowMs }: { agentId: string; device: DeviceSummary; latest: SeriesPoint | null; nowMs: number }) {
  return (
    <tr data-testid={`device-row-${device.deviceId}`}>
      <td>
        <a class="id" href={routeHref({ view: 'device', agentId, deviceId: device.deviceId })}>
          {device.deviceId}
        </a>
      </td>
      <td>{latest === null ? <span class="muted">no telemetry</span> : <LatestValues metrics={latest.metrics} />}</td>
      <td class="num">{latest === null ? '–' : formatAgo(latest.receivedAtMs, nowMs)}</td>
      <td class="num" data-testid="received">
        {formatCount(device.received)}
      </td>
      <td class="num" data-testid="device-duplicates" title="device resends (same seq and ts), counted once">
        {formatCount(device.deviceDuplicates)}
      </td>
      <td class="num" data-testid="gaps">
        <GapsCell device={device} />
      </td>
      <td class="num">{formatCount(device.evicted)}</td>
      <td class="num">
        <Completeness ratio={completeness(device)} testId="completeness" />
      </td>
    </tr>
  );
}

/** Gaps, and how many of them nothing explains (neither a refused payload nor an eviction). */
function GapsCell({ device }: { device: DeviceSummary }) {
  if (device.gaps === 0) return <span>0</span>;
  const { deadLetters, evicted, refusedWithoutSeq } = device.explainedGaps;
  const explained = deadLetters + evicted + refusedWithoutSeq;
  const refusedText = refusedWithoutSeq > 0 ? ` (+${formatCount(refusedWithoutSeq)} refused unreadable)` : '';
  return (
    <span title={`${formatCount(deadLetters)} refused by the agent${refusedText}, ${formatCount(evicted)} evicted, ${formatCount(device.unexplainedGaps)} unexplained`}>
      {formatCount(device.gaps)}{' '}
      {device.unexplainedGaps > 0 ? (
        <span class="warn" data-testid="unexplained-gaps">
          ({formatCount(device.unexplainedGaps)} unexplained)
        </span>
      ) : (
        <span class="muted">({formatCount(explained)} explained)</span>
      )}
    </span>
  );
}

function AgentCard({ agent, detail, nowMs }: { agent: AgentSummary; detail: AgentDetailResponse | undefined; nowMs: number }) {
  const fill = agent.buffer === null ? undefined : agent.buffer.bytes / agent.buffer.maxBytes;
  const records = agent.buffer === null ? 0 : Object.values(agent.buffer.records).reduce((n, r) => n + (r ?? 0), 0);
  const totals = detail?.totals;
  return (
    <section class="panel facts" data-testid="agent-card">
      <div class="fact">
        <span class="fact-label">Status</span>
        <span>
          <StatusBadge status={agent.status} />
          <Reasons reasons={agent.reasons} />
        </span>
      </div>
      <div class="fact">
        <span class="fact-label">Labels</span>
        <Labels labels={agent.labels} />
      </div>
      <div class="fact">
        <span class="fact-label">Versions</span>
        <span>
          {agent.versions === null ? '–' : `agent ${agent.versions.agent}`}
          {agent.versions?.model !== undefined && <span> · model {agent.versions.model}</span>}
          {agent.versions?.config !== undefined && <span> · config {agent.versions.config}</span>}
          {agent.inference !== null && (
            <span class="muted">
              {' '}
              · inference {agent.inference.up ? 'up' : 'down'}
              {agent.inference.model === undefined || agent.inference.model === agent.versions?.model ? '' : ` (${agent.inference.model})`}
            </span>
          )}
        </span>
      </div>
      <div class="fact">
        <span class="fact-label">Buffer</span>
        {fill === undefined || agent.buffer === null ? (
          <span class="muted">–</span>
        ) : (
          <span class="buffer">
            <span>
              {formatCount(records)} records · {formatBytes(agent.buffer.bytes)} of {formatBytes(agent.buffer.maxBytes)} ({formatPercent(fill)})
            </span>
            <Meter ratio={fill} />
          </span>
        )}
      </div>
      <div class="fact">
        <span class="fact-label">Ingest</span>
        <span>
          {formatRate(agent.ingest?.acceptedPerS)} · {agent.ingest === null ? '–' : formatCount(agent.ingest.devicesConnected)} devices connected
        </span>
      </div>
      <div class="fact">
        <span class="fact-label">Last seen</span>
        <span>{formatAgo(agent.lastSeenMs, nowMs)}</span>
      </div>
      <div class="fact">
        <span class="fact-label">Restarts</span>
        <span data-testid="agent-restarts">
          {formatCount(agent.restarts)}
          {agent.startedAtMs !== null && <span class="muted"> · running since {formatAgo(agent.startedAtMs, nowMs)}</span>}
        </span>
      </div>
      {totals !== undefined && (
        <div class="fact fact-wide">
          <span class="fact-label">Records</span>
          <span>
            {formatCount(totals.received)} received · {formatCount(totals.duplicates)} duplicates · {formatCount(totals.gaps)} gaps ({formatCount(totals.explainedByEviction)}{' '}
            explained by eviction) · <Completeness ratio={agentCompleteness(totals)} testId="agent-completeness" />
          </span>
        </div>
      )}
      {detail !== undefined && detail.accountingProblems.length > 0 && (
        <div class="fact fact-wide" data-testid="accounting-problems">
          <span class="fact-label">Not counted</span>
          <span class="warn">
            {detail.accountingProblems.map((p) => (
              <span key={`${p.epoch}:${p.lane}:${p.code}`}>
                {p.code} on {p.lane}
                {p.messages === undefined ? '' : ` (${formatCount(p.messages)} batches set aside)`}: {p.message}{' '}
              </span>
            ))}
          </span>
        </div>
      )}
    </section>
  );
}

/** The agent page (`#/agents/{agentId}`). */
export function AgentView({ agentId }: { agentId: string }) {
  const nowMs = useNow();
  const [refreshKey, requestRefresh] = useThrottledRefresh(COUNTS_REFRESH_MS);
  const detail = useResource<AgentDetailResponse>(agentPath(agentId), refreshKey);
  const devices = useResource<DeviceListResponse>(devicesPath(agentId), refreshKey);
  const [liveSummary, setLiveSummary] = useState<AgentSummary | undefined>(undefined);
  // Mutated in place by the feed (which may carry hundreds of readings a second), drawn at most every LATEST_REDRAW_MS.
  const latest = useRef(new Map<string, SeriesPoint>());
  const [, redraw] = useBatchedBump(LATEST_REDRAW_MS);

  const status = useLiveEvents(agentEventsUrl(agentId), (event: ServerEvent) => {
    if (event.type === 'agents') {
      const mine = event.data.agents.find((a) => a.agentId === agentId);
      if (mine !== undefined) setLiveSummary(mine);
      requestRefresh();
    } else if (event.type === 'telemetry' && event.data.agentId === agentId) {
      const { deviceId, ts, receivedAtMs, metrics } = event.data;
      const previous = latest.current.get(deviceId);
      if (previous === undefined || previous.ts <= ts) latest.current.set(deviceId, { ts, receivedAtMs, metrics });
      redraw();
      requestRefresh();
    }
  });

  const agent = liveSummary ?? detail.data;
  const notFound = errorCode(detail.error) === 'AGENT_NOT_FOUND';
  const list = devices.data?.devices ?? [];
  const latestOf = (d: DeviceSummary): SeriesPoint | null => {
    const pushed = latest.current.get(d.deviceId);
    if (pushed === undefined) return d.latest;
    return d.latest === null || pushed.ts >= d.latest.ts ? pushed : d.latest;
  };

  return (
    <main>
      <nav class="crumbs">
        <a href={routeHref({ view: 'fleet' })}>Fleet</a>
        <span>/</span>
        <span>{agentId}</span>
      </nav>
      <div class="title-row">
        <h1 class="id">{agentId}</h1>
        <LiveBadge status={status} />
      </div>
      {notFound ? (
        <Empty>
          No agent <code>{agentId}</code> is known to this control plane. <a href={routeHref({ view: 'fleet' })}>Back to the fleet</a>
        </Empty>
      ) : (
        <>
          <ErrorBanner error={visibleError(detail.error)} what="the agent" />
          {agent !== undefined && <AgentCard agent={agent} detail={detail.data} nowMs={nowMs} />}
          <section class="panel">
            <h2>Devices</h2>
            <ErrorBanner error={visibleError(devices.error)} what="the devices" />
            {devices.data === undefined ? (
              devices.error === undefined && <Empty>Loading devices…</Empty>
            ) : list.length === 0 ? (
              <Empty>This agent has not sent anything of a device yet.</Empty>
            ) : (
              <div class="table-wrap">
                <table data-testid="devices-table">
                  <thead>
                    <tr>
                      <th>Device</th>
                      <th>Latest values</th>
                      <th class="num">Updated</th>
                      <th class="num">Received</th>
                      <th class="num" title="device resends after a lost acknowledgement, counted once">
                        Resends
                      </th>
                      <th class="num" title="holes in the device's own seq; unexplained: neither refused by the agent nor evicted">
                        Gaps
                      </th>
                      <th class="num">Evicted</th>
                      <th class="num" title="telemetry received / (received + max(gaps, evicted))">
                        Complete
                      </th>
                    </tr>
                  </thead>
                  <tbody>
                    {list.map((d) => (
                      <DeviceRow key={d.deviceId} agentId={agentId} device={d} latest={latestOf(d)} nowMs={nowMs} />
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </section>
        </>
      )}
    </main>
  );
}
