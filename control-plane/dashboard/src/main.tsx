// Entry point of the dashboard bundle (served by the control plane at `/`).
import { render } from 'preact';
import { App } from './app.js';
import { adoptTokenFromLocation } from './auth-token.js';

const root = document.getElementById('app');
if (root === null) throw new Error('index.html has no #app element');
root.textContent = '';
render(<App initialToken={adoptTokenFromLocation()} />, root);
