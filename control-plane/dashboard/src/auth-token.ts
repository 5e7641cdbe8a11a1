// The operator's bearer token: handed over in the URL fragment (`#token=...`, which never
// reaches a server or its logs), then moved to sessionStorage so it leaves the address bar
// and the browser history, and dies with the tab.

const STORAGE_KEY = 'outpost.token';

/** `token=` inside a fragment, alone (`#token=x`) or after a route (`#/agents/a?token=x`, `&token=x`). */
const TOKEN_IN_FRAGMENT = /(^#?|[?&])token=([^&]*)/;

export interface FragmentToken {
  /** The token found, undefined when the fragment had none. */
  token: string | undefined;
  /** The fragment without the token, `#/` when nothing is left. */
  fragment: string;
}

/** Splits a token out of a URL fragment. Pure. */
export function takeTokenFromFragment(fragment: string): FragmentToken {
  const match = TOKEN_IN_FRAGMENT.exec(fragment);
  if (match === null) return { token: undefined, fragment };
  let token: string | undefined;
  try {
    token = decodeURIComponent(match[2] ?? '');
  } catch {
    token = match[2];
  }
  let rest = fragment.slice(0, match.index) + (match[1] === '?' ? '?' : '') + fragment.slice(match.index + match[0].length);
  rest = rest.replace(/\?&/, '?').replace(/[?&]$/, '');
  if (rest === '' || rest === '#') rest = '#/';
  return { token: token === '' ? undefined : token, fragment: rest.startsWith('#') ? rest : `#${rest}` };
}

function storage(): Storage | undefined {
  try {
    return window.sessionStorage;
  } catch {
    // Storage can be disabled (privacy settings): the token then lives in memory only.
    return undefined;
  }
}

let memoryToken: string | undefined;

/**
 * Moves a `#token=` from the address bar into sessionStorage (replacing the history entry,
 * so Back does not bring it again) and returns the token in force, if any.
 */
export function adoptTokenFromLocation(): string | undefined {
  const { token, fragment } = takeTokenFromFragment(window.location.hash);
  if (token !== undefined) {
    saveToken(token);
    window.history.replaceState(window.history.state, '', `${window.location.pathname}${window.location.search}${fragment}`);
  }
  return loadToken();
}

/** The token of this tab: sessionStorage's, else the one kept in memory. */
export function loadToken(): string | undefined {
  try {
    return storage()?.getItem(STORAGE_KEY) ?? memoryToken;
  } catch {
    return memoryToken;
  }
}

/** Keeps `token` for this tab; in memory only when storage refuses it (quota, privacy mode). */
export function saveToken(token: string): void {
  memoryToken = token;
  try {
    storage()?.setItem(STORAGE_KEY, token);
  } catch {
    // The in-memory copy serves until the tab closes.
  }
}

/** Forgets the token (memory and sessionStorage). */
export function forgetToken(): void {
  memoryToken = undefined;
  try {
    storage()?.removeItem(STORAGE_KEY);
  } catch {
    // Nothing was stored there.
  }
}
