// Shown when the API refuses the request (401): the operator pastes a token, kept for the tab.
import { useState } from 'preact/hooks';

/** Asks for the operator token; `code` tells a missing token (AUTH_REQUIRED) from a refused one. */
export function TokenForm({ code, onToken }: { code: string; onToken(token: string): void }) {
  const [value, setValue] = useState('');
  const refused = code === 'AUTH_INVALID';
  return (
    <form
      class="panel token-form"
      data-testid="token-form"
      onSubmit={(e) => {
        e.preventDefault();
        const token = value.trim();
        if (token !== '') onToken(token);
      }}
    >
      <h2>{refused ? 'Token refused' : 'Token needed'}</h2>
      <p class="muted">
        {refused ? 'The control plane did not accept this token. ' : 'This control plane asks operators for a bearer token. '}
        It is kept for this browser tab only. A link can carry it too: <code>#token=…</code>
      </p>
      <div class="token-row">
        <input
          type="password"
          name="token"
          autocomplete="off"
          placeholder="operator token"
          value={value}
          onInput={(e) => setValue((e.target as HTMLInputElement).value)}
          aria-label="operator token"
        />
        <button type="submit" disabled={value.trim() === ''}>
          Use token
        </button>
      </div>
    </form>
  );
}
