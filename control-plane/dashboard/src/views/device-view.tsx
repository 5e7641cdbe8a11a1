// One device: its completeness, a chart per metric over the last minutes, the inference score
// with anomalies marked, and the anomaly list. /series paints the window, then live
// `telemetry`, `inference` and `anomaly` events extend it; the store drops what is past it.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type uPlot from 'uplot';
import type { AnomalyListResponse, DeviceDetailResponse, SeriesResponse, InferencePoint, ServerEvent } from '../api-types.js';
import { errorCode } from '../api-client.js';
import { Completeness, Empty, ErrorBanner, LiveBadge } from '../components/common.js';
import { CHART_COLORS, TimeChart } from '../components/time-chart.js';
import { deviceEpisodes, episodeSpans } from '../episodes.js';
import { completeness, formatAgo, formatCount, formatDuration, formatTime, formatValue } from '../format.js';
import { useBatchedBump, useLiveEvents, useNow, useResource, useThrottledRefresh, visibleError } from '../hooks.js';
import { routeHref } from '../route.js';
import { MAX_CHARTED_METRICS, SeriesStore } from '../series-store.js';
import { anomaliesPath, deviceEventsUrl, devicePath, seriesPath, seriesSinceMs } from '../urls.js';

/** Counts are refetched at most this often while telemetry arrives. */
const COUNTS_REFRESH_MS = 2_000;
/** Charts are redrawn at most this often. */
const CHART_REDRAW_MS = 250;
/** Past anomalies fetched for the list. */
const ANOMALY_HISTORY = 50;
/** Anomalies listed. */
const LISTED_ANOMALIES = 20;

const SCORE_SERIES: uPlot.Series[] = [
  { label: 'score', stroke: '#4ea1ff', width: 1.5, fill: 'rgba(78,161,255,0.10)', spanGaps: true, points: { show: false } },
  { label: 'anomaly', stroke: '#ff4d4f', width: 0, paths: () => null, points: { show: true, size: 9, width: 1, fill: '#ff4d4f', stroke: '#ffb3b3' } },
  { label: 'threshold', stroke: '#f6c344', width: 1, dash: [6, 4], spanGaps: true, points: { show: false } },
];

function metricSeries(name: string, index: number): uPlot.Series[] {
  const color = CHART_COLORS[index % CHART_COLORS.length] ?? '#4ea1ff';
  return [{ label: name, stroke: color, width: 1.5, fill: `${color}1a`, spanGaps: true, points: { show: false } }];
}

/** Answers that mean there is nothing to show for this address. */
const NOT_FOUND_CODES: ReadonlySet<string> = new Set(['AGENT_NOT_FOUND', 'DEVICE_NOT_FOUND']);

/** Shortest time span a chart shows, so one point does not stretch over the whole axis. */
const MIN_SPAN_MS = 60_000;

/** What every chart of the view shows: from the oldest record in the window to the newest. */
function timeRange(store: SeriesStore): [number, number] | undefined {
  const latest = store.latestMs();
  if (latest === undefined) return undefined;
  const horizon = store.horizonMs();
  const firsts = [store.points[0]?.ts, store.inference[0]?.ts, store.anomaliesInWindow()[0]?.ts].filter((t): t is number => t !== undefined);
  const oldest = Math.max(horizon, Math.min(...firsts));
  return [Math.min(oldest, latest - MIN_SPAN_MS), latest];
}

function anomalyKey(a: InferencePoint): string {
  return `${a.ts}/${a.model.name}/${a.model.version}`;
}

/** The device page (`#/agents/{agentId}/devices/{deviceId}`). */
export function DeviceView({ agentId, deviceId }: { agentId: string; deviceId: string }) {
  const nowMs = useNow();
  const [refreshKey, requestRefresh] = useThrottledRefresh(COUNTS_REFRESH_MS);
  const detail = useResource<DeviceDetailResponse>(devicePath(agentId, deviceId), refreshKey);
  const store = useMemo(() => new SeriesStore(), []);
  const [version, redraw] = useBatchedBump(CHART_REDRAW_MS);
  const [sinceMs, setSinceMs] = useState(() => seriesSinceMs(Date.now(), store.windowMs));
  const [seriesKey, setSeriesKey] = useState(0);
  const series = useResource<SeriesResponse>(seriesPath(agentId, deviceId, sinceMs), seriesKey);
  // Fetched again after `anomaly` events: an episode's end comes with its closed record.
  const [historyKey, refreshHistory] = useThrottledRefresh(COUNTS_REFRESH_MS);
  const history = useResource<AnomalyListResponse>(anomaliesPath({ agentId, deviceId, limit: ANOMALY_HISTORY }), historyKey);

  useEffect(() => {
    if (series.data === undefined) return;
    for (const point of series.data.points) store.addPoint(point);
    for (const result of series.data.inference) store.addInference(result);
    redraw();
  }, [series.data, store, redraw]);
  useEffect(() => {
    if (history.data === undefined) return;
    for (const a of history.data.anomalies) if (a.agentId === agentId && a.deviceId === deviceId) store.addAnomaly({ ts: a.ts, score: a.score, anomaly: true, model: a.model });
    redraw();
  }, [history.data, store, redraw, agentId, deviceId]);

  const status = useLiveEvents(deviceEventsUrl(agentId, deviceId), (event: ServerEvent) => {
    if (event.type === 'agents' || event.type === 'rollout' || event.data.agentId !== agentId || event.data.deviceId !== deviceId) return;
    if (event.type === 'telemetry') {
      const { ts, receivedAtMs, metrics } = event.data;
      if (store.addPoint({ ts, receivedAtMs, metrics })) redraw();
      requestRefresh();
    } else {
      const { ts, score, anomaly, model, threshold } = event.data;
      const result: InferencePoint = { ts, score, anomaly: event.type === 'anomaly' || anomaly, model, ...(threshold === undefined ? {} : { threshold }) };
      const added = event.type === 'inference' ? store.addInference(result) : store.addAnomaly(result);
      if (event.type === 'anomaly') refreshHistory();
      if (added) redraw();
    }
  });

  // The stream carries live data only: after a reconnect, /series fills what passed meanwhile.
  const wasLive = useRef(false);
  useEffect(() => {
    if (status.state !== 'live') return;
    if (wasLive.current) {
      setSinceMs(store.latestMs() ?? seriesSinceMs(Date.now(), store.windowMs));
      setSeriesKey((k) => k + 1);
    }
    wasLive.current = true;
  }, [status, store]);

  // Derived once per redraw, not per render (the clock re-renders every second).
  const view = useMemo(() => {
    const metrics = store.metricNames();
    const inWindow = store.anomaliesInWindow();
    return {
      metrics,
      charted: metrics.slice(0, MAX_CHARTED_METRICS).map((name) => ({ name, data: store.metricData(name) })),
      score: store.inference.length + inWindow.length > 0 ? store.scoreData() : undefined,
      anomaliesMs: inWindow.map((a) => a.ts),
      listed: [...store.anomalies].reverse().slice(0, LISTED_ANOMALIES),
      points: store.points.length,
      latestMs: store.latestMs(),
      rangeMs: timeRange(store),
    };
    // `version` is what changes when the store does.
  }, [store, version]);

  const episodes = useMemo(() => deviceEpisodes(history.data?.anomalies ?? [], agentId, deviceId), [history.data, agentId, deviceId]);
  const spansMs = useMemo(() => episodeSpans(episodes, view.latestMs), [episodes, view.latestMs]);

  const notFound = NOT_FOUND_CODES.has(errorCode(detail.error) ?? '');
  const d = detail.data;

  return (
    <main>
      <nav class="crumbs">
        <a href={routeHref({ view: 'fleet' })}>Fleet</a>
        <span>/</span>
        <a href={routeHref({ view: 'agent', agentId })}>{agentId}</a>
        <span>/</span>
        <span>{deviceId}</span>
      </nav>
      <div class="title-row">
        <h1 class="id">{deviceId}</h1>
        <LiveBadge status={status} />
      </div>
      {notFound && (
        <Empty>
          {errorCode(detail.error) === 'AGENT_NOT_FOUND' ? (
            <>
              No agent <code>{agentId}</code> is known to this control plane. <a href={routeHref({ view: 'fleet' })}>Back to the fleet</a>
            </>
          ) : (
            <>
              Agent <code>{agentId}</code> has sent nothing of device <code>{deviceId}</code>. <a href={routeHref({ view: 'agent', agentId })}>Back to the agent</a>
            </>
          )}
        </Empty>
      )}
      <ErrorBanner error={visibleError(notFound ? undefined : detail.error)} what="the device" />
      {d !== undefined && (
        <section class="panel facts" data-testid="device-card">
          <div class="fact fact-big">
            <span class="fact-label">Data completeness</span>
            <Completeness ratio={completeness(d)} testId="completeness" />
            <span class="muted small">telemetry received / (received + max(gaps, evicted))</span>
          </div>
          <div class="fact">
            <span class="fact-label">Received</span>
            <span>
              <span data-testid="received">{formatCount(d.received)}</span>
              {Object.keys(d.kinds).length > 1 && (
                <span class="muted">
                  {' '}
                  (
                  {Object.entries(d.kinds)
                    .map(([kind, n]) => `${formatCount(n)} ${kind}`)
                    .join(', ')}
                  )
                </span>
              )}
            </span>
          </div>
          <div class="fact">
            <span class="fact-label">Resends</span>
            <span>
              <span data-testid="device-duplicates">{formatCount(d.deviceDuplicates)}</span>
              <span class="muted"> device messages sent again (counted once) · {formatCount(d.duplicates)} uplink duplicates dropped</span>
            </span>
          </div>
          <div class="fact">
            <span class="fact-label">Refused</span>
            <span>
              {Object.keys(d.deadLetters).length === 0
                ? '0'
                : Object.entries(d.deadLetters)
                    .map(([reason, n]) => `${formatCount(n)} ${reason}`)
                    .join(', ')}
            </span>
          </div>
          <div class="fact">
            <span class="fact-label">Gaps</span>
            <span>
              {formatCount(d.gaps)}
              {d.gaps > 0 && (
                <span data-testid="gap-explanation">
                  {' '}
                  — {formatCount(d.explainedGaps.deadLetters + d.explainedGaps.refusedWithoutSeq)} refused, {formatCount(d.explainedGaps.evicted)} evicted,{' '}
                  <span class={d.unexplainedGaps > 0 ? 'warn' : 'muted'}>{formatCount(d.unexplainedGaps)} unexplained</span>
                </span>
              )}
              {d.deviceSeq.gapRanges.length > 0 && (
                <span class="muted">
                  {' '}
                  (seq{' '}
                  {d.deviceSeq.gapRanges
                    .slice(0, 3)
                    .map(([a, b]) => (a === b ? `${a}` : `${a}–${b}`))
                    .join(', ')}
                  {d.deviceSeq.gapRanges.length > 3 ? ', …' : ''})
                </span>
              )}
            </span>
          </div>
          <div class="fact">
            <span class="fact-label">Evicted</span>
            <span>{formatCount(d.evicted)}</span>
          </div>
          <div class="fact">
            <span class="fact-label">Latest reading</span>
            <span>{d.latest === null ? '–' : `${formatTime(d.latest.ts)} (${formatAgo(d.latest.receivedAtMs, nowMs)})`}</span>
          </div>
        </section>
      )}
      {!notFound && (
        <>
          <section class="panel" data-testid="device-charts" data-points={view.points} data-anomalies={view.anomaliesMs.length}>
            <h2>
              Last {Math.round(store.windowMs / 60_000)} minutes
              {view.latestMs !== undefined && <span class="muted small"> · newest {formatTime(view.latestMs)}</span>}
            </h2>
            <ErrorBanner error={visibleError(series.error)} what="the series" />
            {series.data === undefined && series.error === undefined && view.points === 0 ? (
              <Empty>Loading the series…</Empty>
            ) : view.points === 0 && view.score === undefined ? (
              <Empty>No telemetry from this device in the last minutes; charts start with the next reading.</Empty>
            ) : (
              <div class="charts">
                {view.score !== undefined && (
                  <TimeChart key="score" testId="chart-score" title="Inference score" series={SCORE_SERIES} data={view.score} anomaliesMs={view.anomaliesMs} spansMs={spansMs} rangeMs={view.rangeMs} />
                )}
                {view.charted.map(({ name, data }, i) => (
                  <TimeChart key={name} testId={`chart-${name}`} title={name} series={metricSeries(name, i)} data={data} anomaliesMs={view.anomaliesMs} spansMs={spansMs} rangeMs={view.rangeMs} />
                ))}
              </div>
            )}
            {view.metrics.length > MAX_CHARTED_METRICS && (
              <p class="muted small">
                {view.metrics.length - MAX_CHARTED_METRICS} more metrics not charted: {view.metrics.slice(MAX_CHARTED_METRICS).join(', ')}
              </p>
            )}
          </section>
          {episodes.length > 0 && (
            <section class="panel">
              <h2>
                Anomaly episodes <span class="count">{episodes.length}</span>
              </h2>
              <ul class="anomaly-list" data-testid="episode-list">
                {episodes.slice(0, LISTED_ANOMALIES).map((e) => (
                  <li key={e.episodeId} data-testid="episode-item" data-state={e.state}>
                    <span class="anomaly-dot" />
                    <span>{formatTime(e.startTs)}</span>
                    <span>{e.endTs === null ? 'ongoing' : `${formatDuration(e.endTs - e.startTs)} (${e.reason ?? 'closed'})`}</span>
                    <span>peak {formatValue(e.peakScore)}</span>
                    {e.windows !== null && <span class="muted">{e.windows} windows</span>}
                    {e.contributors.length > 0 && <span>{e.contributors.join(', ')}</span>}
                    <span class="muted">
                      {e.model.name} {e.model.version}
                    </span>
                  </li>
                ))}
              </ul>
            </section>
          )}
          <section class="panel">
            <h2>
              Anomalies{' '}
              <span class="count" data-testid="anomaly-markers" data-count={view.anomaliesMs.length} title="anomalies marked on the charts">
                {view.anomaliesMs.length} in window
              </span>
            </h2>
            <ErrorBanner error={visibleError(history.error)} what="past anomalies" />
            {view.listed.length === 0 ? (
              <Empty>No anomaly reported for this device.</Empty>
            ) : (
              <ul class="anomaly-list" data-testid="anomaly-list">
                {view.listed.map((a) => (
                  <li key={anomalyKey(a)} data-testid="anomaly-item">
                    <span class="anomaly-dot" />
                    <span>{formatTime(a.ts)}</span>
                    <span>score {formatValue(a.score)}</span>
                    {a.threshold !== undefined && <span class="muted">threshold {formatValue(a.threshold)}</span>}
                    <span class="muted">
                      {a.model.name} {a.model.version}
                    </span>
                  </li>
                ))}
              </ul>
            )}
          </section>
        </>
      )}
    </main>
  );
}
