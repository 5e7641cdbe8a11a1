import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// The dashboard is built into the control plane's dist/, which serves it at `/`. JSX goes
// through vite's own oxc transform with Preact's automatic runtime (no babel preset needed).
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: './',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: fileURLToPath(new URL('../dist/dashboard', import.meta.url)),
    emptyOutDir: true,
    // The control plane serves these files itself; a source map helps whoever debugs the page.
    sourcemap: true,
  },
});
