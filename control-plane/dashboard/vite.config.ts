import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// The dashboard is built into the control plane's dist/, which serves it at `/`.
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: './',
  build: { outDir: fileURLToPath(new URL('../dist/dashboard', import.meta.url)), emptyOutDir: true },
});
