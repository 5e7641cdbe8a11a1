// The app shell: the token, the API client, the hash route, and the header.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { createApiClient } from './api-client.js';
import { AppContext, type AppContextValue } from './app-context.js';
import { adoptTokenFromLocation, forgetToken, saveToken, takeTokenFromFragment } from './auth-token.js';
import { Empty } from './components/common.js';
import { TokenForm } from './components/token-form.js';
import { parseRoute, routeHref, type Route } from './route.js';
import { AgentView } from './views/agent-view.js';
import { DeviceView } from './views/device-view.js';
import { FleetView } from './views/fleet-view.js';
import { RolloutView } from './views/rollout-view.js';
import { RolloutsView } from './views/rollouts-view.js';

/** The hash route; a `token=` in a followed link goes to `onToken` and leaves the address bar. */
function useRoute(onToken: (token: string) => void): Route {
  const [route, setRoute] = useState(() => parseRoute(window.location.hash));
  const tokenHandler = useRef(onToken);
  tokenHandler.current = onToken;
  useEffect(() => {
    const onHash = (): void => {
      // Storing the token is not enough: the API client and the live feed hold the one in force.
      const { token } = takeTokenFromFragment(window.location.hash);
      if (token !== undefined) {
        adoptTokenFromLocation();
        tokenHandler.current(token);
      }
      setRoute(parseRoute(window.location.hash));
    };
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);
  return route;
}

function View({ route }: { route: Route }) {
  switch (route.view) {
    case 'fleet':
      return <FleetView />;
    case 'agent':
      return <AgentView key={route.agentId} agentId={route.agentId} />;
    case 'device':
      return <DeviceView key={`${route.agentId}/${route.deviceId}`} agentId={route.agentId} deviceId={route.deviceId} />;
    case 'rollouts':
      return <RolloutsView />;
    case 'rollout':
      return <RolloutView key={route.rolloutId} rolloutId={route.rolloutId} />;
    case 'not-found':
      return (
        <main>
          <Empty>
            Nothing lives at <code>{route.fragment}</code>. <a href={routeHref({ view: 'fleet' })}>Go to the fleet</a>
          </Empty>
        </main>
      );
  }
}

/** The dashboard: header, token form when the API refuses, and the routed view. */
export function App({ initialToken }: { initialToken: string | undefined }) {
  const token = useRef(initialToken);
  const [tokenVersion, setTokenVersion] = useState(0);
  const [authProblem, setAuthProblem] = useState<string | undefined>(undefined);

  const applyToken = (value: string): void => {
    token.current = value;
    saveToken(value);
    setAuthProblem(undefined);
    setTokenVersion((v) => v + 1);
  };
  const route = useRoute(applyToken);
  const section = route.view === 'rollouts' || route.view === 'rollout' ? 'rollouts' : route.view === 'not-found' ? undefined : 'fleet';

  const api = useMemo(() => createApiClient({ token: () => token.current, onAuthFailed: setAuthProblem }), []);
  const context = useMemo<AppContextValue>(() => ({ api, tokenVersion, onAuthFailed: setAuthProblem }), [api, tokenVersion]);
  const signOut = (): void => {
    token.current = undefined;
    forgetToken();
    setTokenVersion((v) => v + 1);
  };

  return (
    <AppContext.Provider value={context}>
      <header class="top">
        <a class="brand" href={routeHref({ view: 'fleet' })}>
          <span class="brand-mark" />
          Outpost
        </a>
        <span class="muted small">control plane</span>
        <nav class="top-nav">
          <a href={routeHref({ view: 'fleet' })} class={section === 'fleet' ? 'active' : undefined} data-testid="nav-fleet">
            Fleet
          </a>
          <a href={routeHref({ view: 'rollouts' })} class={section === 'rollouts' ? 'active' : undefined} data-testid="nav-rollouts">
            Rollouts
          </a>
        </nav>
        <span class="spacer" />
        {token.current !== undefined && (
          <button class="link" type="button" onClick={signOut} data-testid="forget-token">
            forget token
          </button>
        )}
      </header>
      {authProblem !== undefined && (
        <div class="page">
          <TokenForm code={authProblem} onToken={applyToken} />
        </div>
      )}
      <div class="page" hidden={authProblem !== undefined}>
        <View route={route} />
      </div>
    </AppContext.Provider>
  );
}
