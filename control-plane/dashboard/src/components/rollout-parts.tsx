// Pieces the rollouts list and the rollout page share.
import type { RolloutStatus } from '../api-types.js';

/** A rollout's status (pending, running, paused, succeeded, failed, rolled-back, aborted), coloured. */
export function RolloutStatusBadge({ status }: { status: RolloutStatus }) {
  return (
    <span class={`badge rollout-${status}`} data-testid="rollout-status" data-status={status}>
      <span class="dot" />
      {status}
    </span>
  );
}

/** What a rollout brings: the model (`name@version`) and the managed config version. */
export function ChangeChips({ model, configVersion }: { model: string | null; configVersion: string | null }) {
  return (
    <span class="labels">
      {model !== null && (
        <span class="chip" data-testid="change-model">
          <span class="chip-key">model</span>
          {model}
        </span>
      )}
      {configVersion !== null && (
        <span class="chip" data-testid="change-config">
          <span class="chip-key">config</span>
          {configVersion}
        </span>
      )}
    </span>
  );
}
