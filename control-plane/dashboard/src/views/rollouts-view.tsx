// Every rollout, newest first: its status, what it changes, how far it got, who started it and
// when. The first paint comes from GET /api/rollouts; each `rollout` event replaces that
// rollout's row or adds it, so one created or moving on elsewhere shows without a reload.
import { useState } from 'preact/hooks';
import type { RolloutListResponse, RolloutSummary, ServerEvent } from '../api-types.js';
import { Empty, ErrorBanner, LiveBadge } from '../components/common.js';
import { ChangeChips, RolloutStatusBadge } from '../components/rollout-parts.js';
import { formatAgo } from '../format.js';
import { useLiveEvents, useNow, useRefetchWhenLive, useResource, useThrottledRefresh, visibleError } from '../hooks.js';
import { routeHref } from '../route.js';
import { mergeRollouts, waveText } from '../rollout-list.js';
import { fleetEventsUrl, ROLLOUTS_PATH } from '../urls.js';

/** The list is read again at most this often (after the live feed comes back). */
const LIST_REFRESH_MS = 2_000;

function RolloutRow({ rollout, nowMs }: { rollout: RolloutSummary; nowMs: number }) {
  return (
    <tr data-testid={`rollout-row-${rollout.id}`} data-status={rollout.status} data-wave={rollout.wave}>
      <td>
        <RolloutStatusBadge status={rollout.status} />
      </td>
      <td>
        <a href={routeHref({ view: 'rollout', rolloutId: rollout.id })} data-testid="rollout-link">
          {rollout.name}
        </a>
        <div class="muted small id">{rollout.id}</div>
        {rollout.reason !== undefined && <div class="small reason-text">{rollout.reason}</div>}
      </td>
      <td>
        <ChangeChips model={rollout.model} configVersion={rollout.configVersion} />
      </td>
      <td data-testid="rollout-wave">{waveText(rollout)}</td>
      <td class="num">{rollout.targets}</td>
      <td title={new Date(rollout.createdAtMs).toISOString()}>
        {formatAgo(rollout.createdAtMs, nowMs)}
        <div class="muted small">by {rollout.createdBy}</div>
      </td>
    </tr>
  );
}

/** The rollouts page (`#/rollouts`). */
export function RolloutsView() {
  const nowMs = useNow();
  const [refreshKey, requestRefresh] = useThrottledRefresh(LIST_REFRESH_MS);
  const fetched = useResource<RolloutListResponse>(ROLLOUTS_PATH, refreshKey);
  const [pushed, setPushed] = useState<RolloutSummary[]>([]);
  const status = useLiveEvents(fleetEventsUrl(), (event: ServerEvent) => {
    if (event.type === 'rollout') setPushed((list) => mergeRollouts(list, [event.data]));
  });
  useRefetchWhenLive(status, requestRefresh);
  const rollouts = mergeRollouts(fetched.data?.rollouts ?? [], pushed);
  const loaded = fetched.data !== undefined || pushed.length > 0;

  return (
    <main>
      <div class="title-row">
        <h1>Rollouts</h1>
        <LiveBadge status={status} />
      </div>
      <section class="panel">
        <ErrorBanner error={visibleError(fetched.error)} what="the rollouts" />
        {!loaded ? (
          fetched.error === undefined && <Empty>Loading rollouts…</Empty>
        ) : rollouts.length === 0 ? (
          <Empty>
            No rollout yet. Publish a model with <code>outpostctl models publish</code>, then <code>outpostctl rollout create -f spec.yaml</code>.
          </Empty>
        ) : (
          <div class="table-wrap">
            <table data-testid="rollouts-table">
              <thead>
                <tr>
                  <th>Status</th>
                  <th>Rollout</th>
                  <th>Change</th>
                  <th>Wave</th>
                  <th class="num">Agents</th>
                  <th>Created</th>
                </tr>
              </thead>
              <tbody>
                {rollouts.map((r) => (
                  <RolloutRow key={r.id} rollout={r} nowMs={nowMs} />
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
    </main>
  );
}
