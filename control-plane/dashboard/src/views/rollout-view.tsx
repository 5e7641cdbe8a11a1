// One rollout: what it changes and how, a progress bar per wave (applied / refused / pending,
// the soak counting down), each wave's gate values beside their thresholds, the agents that
// failed and why, the history, and the four operator actions behind a confirmation. The page
// reads GET /api/rollouts/{id} again (throttled) on every `rollout` event of this rollout, and
// on `agents` events while it runs, since the per-wave counts come from the agents' heartbeats.
import { useRef, useState } from 'preact/hooks';
import type { GateResult, HistoryEntry, RolloutView as RolloutDocument, ServerEvent, WaveProgress, WaveState } from '../api-types.js';
import { errorCode, isAuthError } from '../api-client.js';
import { useApp } from '../app-context.js';
import { Empty, ErrorBanner, Labels, LiveBadge } from '../components/common.js';
import { ConfirmDialog } from '../components/confirm-dialog.js';
import { ChangeChips, RolloutStatusBadge } from '../components/rollout-parts.js';
import { formatAgo, formatCount, formatDuration, formatTime } from '../format.js';
import { gateFigures, gateName } from '../gate-figures.js';
import { useLiveEvents, useNow, useRefetchWhenLive, useResource, useThrottledRefresh, visibleError } from '../hooks.js';
import { routeHref } from '../route.js';
import { actionAllowed, actionText, FINISHED_STATUSES, ROLLOUT_ACTIONS, type OperatorAction } from '../rollout-actions.js';
import { newerView } from '../rollout-list.js';
import { fleetEventsUrl, rolloutActionPath, rolloutPath } from '../urls.js';

/** The rollout is read again at most this often while events arrive. */
const VIEW_REFRESH_MS = 500;

type Spec = RolloutDocument['spec'];

const plural = (n: number, word: string): string => `${formatCount(n)} ${word}${n === 1 ? '' : 's'}`;

/** A wave's size as the spec gives it: a count of agents, or the share of the selection reached by its end. */
function waveSizeText(size: Spec['strategy']['waves'][number] | undefined): string {
  if (size === undefined) return '';
  return typeof size === 'number' ? plural(size, 'agent') : `up to ${size} of the selection`;
}

function SpecFacts({ view, nowMs }: { view: RolloutDocument; nowMs: number }) {
  const { spec } = view;
  const gates = [
    'applied',
    ...(spec.gates.healthy ? ['healthy'] : []),
    ...(spec.gates.inferenceErrorRate === undefined ? [] : ['inferenceErrorRate']),
    ...(spec.gates.anomalyRate === undefined ? [] : ['anomalyRate']),
  ];
  const selector = spec.selector;
  return (
    <section class="panel facts" data-testid="rollout-facts">
      <div class="fact">
        <span class="fact-label">Change</span>
        <ChangeChips model={view.model === null ? null : `${view.model.name}@${view.model.version}`} configVersion={view.configVersion} />
      </div>
      <div class="fact">
        <span class="fact-label">Selector</span>
        <span>
          {Object.keys(selector.labels).length === 0 && selector.agents === undefined ? <span>every agent</span> : <Labels labels={selector.labels} />}
          {selector.agents !== undefined && <span class="muted small"> agents {selector.agents.join(', ')}</span>}
        </span>
      </div>
      <div class="fact">
        <span class="fact-label">Agents</span>
        <span data-testid="rollout-agents">
          {formatCount(view.targets.length)} targeted of {formatCount(view.plannedAgents)} selected
        </span>
      </div>
      <div class="fact">
        <span class="fact-label">Strategy</span>
        <span>
          waves {spec.strategy.waves.join(' / ')} · soak {formatDuration(spec.strategy.soak)} · deadline {formatDuration(spec.strategy.waveDeadline)} · failure budget{' '}
          {spec.strategy.failureBudget}
        </span>
      </div>
      <div class="fact">
        <span class="fact-label">Gates</span>
        <span>
          {gates.map(gateName).join(', ')} · on failure: {spec.onFailure}
        </span>
      </div>
      <div class="fact">
        <span class="fact-label">Created</span>
        <span title={new Date(view.createdAtMs).toISOString()}>
          {formatTime(view.createdAtMs)} ({formatAgo(view.createdAtMs, nowMs)}) by {view.createdBy}
        </span>
      </div>
    </section>
  );
}

/** Applied, refused and pending agents of a wave as one stacked bar. */
function ProgressBar({ progress }: { progress: WaveProgress }) {
  const whole = Math.max(progress.agents, progress.applied + progress.refused + progress.pending, 1);
  const part = (n: number): string => `${(n / whole) * 100}%`;
  return (
    <span class="wave-bar" title={`${progress.applied} applied, ${progress.refused} refused, ${progress.pending} pending of ${progress.agents}`}>
      <span class="wave-bar-applied" style={{ width: part(progress.applied) }} />
      <span class="wave-bar-refused" style={{ width: part(progress.refused) }} />
      <span class="wave-bar-pending" style={{ width: part(progress.pending) }} />
    </span>
  );
}

/** When the wave's current phase ends: the soak countdown, the apply deadline, or when it was judged. */
function waveTiming(view: RolloutDocument, wave: WaveState, progress: WaveProgress, nowMs: number): string | undefined {
  const paused = view.status === 'paused' && view.wave === wave.index;
  if (progress.state === 'soaking' && progress.soakEndsAtMs !== undefined) {
    const leftMs = progress.soakEndsAtMs - nowMs;
    if (leftMs > 0) return `soak ends in ${formatDuration(leftMs)}${paused ? ' (paused: judged after resume)' : ''}`;
    return paused ? 'soak over; judged after resume' : 'soak over; judging';
  }
  if (progress.state === 'applying' && wave.startedAtMs !== undefined) {
    const leftMs = wave.startedAtMs + view.spec.strategy.waveDeadline - nowMs;
    return leftMs > 0 ? `deadline in ${formatDuration(leftMs)}` : 'deadline passed';
  }
  if (wave.outcome !== undefined && wave.settledAtMs !== undefined) return `judged after ${formatDuration(view.spec.strategy.soak)} soak`;
  return undefined;
}

function GateTable({ gates, spec }: { gates: readonly GateResult[]; spec: Spec }) {
  return (
    <table class="gates" data-testid="wave-gates">
      <tbody>
        {gates.map((g) => (
          <tr key={g.gate} data-testid={`gate-${g.gate}`} data-outcome={g.outcome}>
            <td class="gate-name">{gateName(g.gate)}</td>
            <td>
              <span class={`outcome outcome-${g.outcome}`}>{g.outcome}</span>
            </td>
            <td>
              <span class="figures">
                {gateFigures(g, spec.gates).map((f) => (
                  <span class="figure" key={f.label} data-testid="gate-figure">
                    <span class="figure-label">{f.label}</span> <span class="figure-value">{f.value}</span>
                    {f.limit !== undefined && <span class="figure-limit"> vs {f.limit}</span>}
                    {f.note !== undefined && <span class="muted"> ({f.note})</span>}
                  </span>
                ))}
              </span>
            </td>
            <td class="muted small">{g.detail}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function WaveCard({ view, wave, progress, nowMs }: { view: RolloutDocument; wave: WaveState; progress: WaveProgress; nowMs: number }) {
  const current = view.wave === wave.index && !FINISHED_STATUSES.has(view.status);
  const timing = waveTiming(view, wave, progress, nowMs);
  return (
    <div
      class={`wave${current ? ' wave-current' : ''}`}
      data-testid={`wave-${wave.index}`}
      data-state={progress.state}
      data-agents={progress.agents}
      data-applied={progress.applied}
      data-refused={progress.refused}
      data-pending={progress.pending}
    >
      <div class="wave-head">
        <strong>Wave {wave.index + 1}</strong>
        <span class="muted small">{waveSizeText(view.spec.strategy.waves[wave.index])}</span>
        <span class={`wave-state wave-state-${progress.state}`} data-testid="wave-state">
          {progress.state}
        </span>
        {timing !== undefined && (
          <span class="small" data-testid="wave-timing">
            {timing}
          </span>
        )}
        <span class="spacer" />
        {wave.startedAtMs !== undefined && <span class="muted small">started {formatTime(wave.startedAtMs)}</span>}
      </div>
      <div class="wave-progress">
        <ProgressBar progress={progress} />
        <span class="small wave-counts" data-testid="wave-counts">
          {formatCount(progress.applied)} applied · {formatCount(progress.refused)} refused · {formatCount(progress.pending)} pending of {plural(progress.agents, 'agent')}
        </span>
      </div>
      {wave.gates.length > 0 ? <GateTable gates={wave.gates} spec={view.spec} /> : wave.startedAtMs !== undefined && <div class="muted small">Gates are judged when the soak ends.</div>}
      {wave.failed.length > 0 && (
        <ul class="failed-agents" data-testid="wave-failed">
          {wave.failed.map((f) => (
            <li key={f.agentId}>
              <a class="id" href={routeHref({ view: 'agent', agentId: f.agentId })}>
                {f.agentId}
              </a>{' '}
              <span class="warn">{f.reason}</span>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

/** A history entry's detail, unless it only lists the gate outcomes its chips already show. */
function detailBesideGates(entry: HistoryEntry): string {
  if (entry.gates === undefined || entry.gates.length === 0) return entry.detail;
  const outcomes = entry.gates.map((g) => `${g.gate} ${g.outcome}`).join(', ');
  return entry.detail === outcomes ? '' : entry.detail;
}

function History({ entries }: { entries: readonly HistoryEntry[] }) {
  return (
    <div class="table-wrap">
      <table data-testid="history">
        <thead>
          <tr>
            <th class="num">#</th>
            <th>Time</th>
            <th>Actor</th>
            <th>Action</th>
            <th class="num">Wave</th>
            <th>Status</th>
            <th>Detail</th>
          </tr>
        </thead>
        <tbody>
          {entries.map((h) => (
            <tr key={h.seq} data-testid={`history-${h.seq}`} data-action={h.action} data-actor={h.actor}>
              <td class="num muted">{h.seq}</td>
              <td class="num" title={new Date(h.atMs).toISOString()}>
                {formatTime(h.atMs)}
              </td>
              <td class="small nowrap">{h.actor}</td>
              <td>
                <span class="action">{h.action}</span>
              </td>
              <td class="num">{h.wave === undefined ? '–' : h.wave + 1}</td>
              <td class="small">{h.status}</td>
              <td class="small">
                {detailBesideGates(h)}
                {h.gates !== undefined && h.gates.length > 0 && (
                  <span class="gate-chips">
                    {h.gates.map((g) => (
                      <span class={`outcome outcome-${g.outcome}`} key={g.gate} title={g.detail}>
                        {gateName(g.gate)} {g.outcome}
                      </span>
                    ))}
                  </span>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function ActionButtons({ view, busy, onAction }: { view: RolloutDocument; busy: boolean; onAction(action: OperatorAction): void }) {
  return (
    <div class="actions" data-testid="rollout-actions">
      {ROLLOUT_ACTIONS.map((action) => {
        const allowed = actionAllowed(action, view.status);
        const text = actionText(action, { name: view.spec.name, wave: view.wave, targets: view.targets.length });
        return (
          <button
            key={action}
            type="button"
            class={`button ${text.destructive ? 'button-danger-outline' : ''}`}
            data-testid={`action-${action}`}
            disabled={!allowed || busy}
            title={allowed ? text.consequence : `not while ${view.status}`}
            onClick={() => onAction(action)}
          >
            {text.label}
          </button>
        );
      })}
    </div>
  );
}

/** The rollout page (`#/rollouts/{rolloutId}`). */
export function RolloutView({ rolloutId }: { rolloutId: string }) {
  const { api } = useApp();
  const nowMs = useNow();
  const [refreshKey, requestRefresh] = useThrottledRefresh(VIEW_REFRESH_MS);
  const read = useResource<RolloutDocument>(rolloutPath(rolloutId), refreshKey);
  // The answer of the last action: shown at once, until a later read replaces it.
  const [acted, setActed] = useState<RolloutDocument | undefined>(undefined);
  const [confirming, setConfirming] = useState<OperatorAction | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const [actionError, setActionError] = useState<{ action: OperatorAction; error: Error } | undefined>(undefined);
  const view = newerView(read.data, acted);
  const running = useRef(true);
  running.current = view === undefined || !FINISHED_STATUSES.has(view.status);

  const status = useLiveEvents(fleetEventsUrl(), (event: ServerEvent) => {
    if (event.type === 'rollout' && event.data.id === rolloutId) requestRefresh();
    else if (event.type === 'agents' && running.current) requestRefresh();
  });
  useRefetchWhenLive(status, requestRefresh);

  const confirm = async (action: OperatorAction): Promise<void> => {
    setBusy(true);
    setActionError(undefined);
    try {
      setActed(await api.post<RolloutDocument>(rolloutActionPath(rolloutId, action)));
    } catch (error) {
      if (!isAuthError(error)) setActionError({ action, error: error instanceof Error ? error : new Error(String(error)) });
    } finally {
      setBusy(false);
      setConfirming(undefined);
      requestRefresh();
    }
  };

  const notFound = errorCode(read.error) === 'ROLLOUT_NOT_FOUND';
  const text = view === undefined || confirming === undefined ? undefined : actionText(confirming, { name: view.spec.name, wave: view.wave, targets: view.targets.length });

  return (
    <main>
      <nav class="crumbs">
        <a href={routeHref({ view: 'rollouts' })}>Rollouts</a>
        <span>/</span>
        <span class="id">{rolloutId}</span>
      </nav>
      <div class="title-row">
        <h1>{view?.spec.name ?? rolloutId}</h1>
        {view !== undefined && <RolloutStatusBadge status={view.status} />}
        <LiveBadge status={status} />
        <span class="spacer" />
        {view !== undefined && <ActionButtons view={view} busy={busy} onAction={setConfirming} />}
      </div>
      {notFound ? (
        <Empty>
          No rollout <code>{rolloutId}</code> is known to this control plane. <a href={routeHref({ view: 'rollouts' })}>Back to the rollouts</a>
        </Empty>
      ) : (
        <>
          <ErrorBanner error={visibleError(read.error)} what="the rollout" />
          {actionError !== undefined && (
            <div class="banner banner-error" role="alert" data-testid="action-error">
              <strong>Could not {actionError.action}.</strong> {errorCode(actionError.error) === undefined ? '' : `${errorCode(actionError.error)}: `}
              {actionError.error.message}
            </div>
          )}
          {view?.reason !== undefined && (
            <div class="banner banner-warn" data-testid="rollout-reason">
              {view.reason}
            </div>
          )}
          {view === undefined ? (
            read.error === undefined && <Empty>Loading the rollout…</Empty>
          ) : (
            <>
              <SpecFacts view={view} nowMs={nowMs} />
              <section class="panel">
                <h2>
                  Waves <span class="count">{view.status === 'pending' ? 'not started' : `wave ${view.wave + 1} of ${view.waves.length}`}</span>
                </h2>
                <div class="waves" data-testid="waves">
                  {view.waves.map((w) => {
                    const progress = view.progress.find((p) => p.index === w.index) ?? { index: w.index, agents: 0, applied: 0, refused: 0, pending: 0, state: 'waiting' as const };
                    return <WaveCard key={w.index} view={view} wave={w} progress={progress} nowMs={nowMs} />;
                  })}
                </div>
              </section>
              <section class="panel">
                <h2>
                  History <span class="count">{plural(view.history.length, 'step')}</span>
                </h2>
                <History entries={view.history} />
              </section>
              <p class="muted small">Updated {formatAgo(view.updatedAtMs, nowMs)}.</p>
            </>
          )}
        </>
      )}
      {confirming !== undefined && text !== undefined && (
        <ConfirmDialog
          title={text.title}
          confirmLabel={text.label}
          destructive={text.destructive}
          busy={busy}
          onConfirm={() => void confirm(confirming)}
          onCancel={() => setConfirming(undefined)}
        >
          <p>{text.consequence}</p>
        </ConfirmDialog>
      )}
    </main>
  );
}
