// What every view needs from the app shell: the API client and the live feed, both carrying
// the operator's token, and a way to say "the token was refused".
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { ApiClient } from './api-client.js';

export interface AppContextValue {
  api: ApiClient;
  /** Changes whenever the operator gives another token: data and streams load again. */
  tokenVersion: number;
  onAuthFailed(code: string): void;
}

export const AppContext = createContext<AppContextValue | undefined>(undefined);

/** The app context; throws outside the provider (a wiring mistake, not a runtime state). */
export function useApp(): AppContextValue {
  const value = useContext(AppContext);
  if (value === undefined) throw new Error('useApp() outside <AppContext.Provider>');
  return value;
}
