#!/usr/bin/env node
// Composition root of `outpostctl`: the only CLI file that reads process.env, stdin and the
// terminal, handles signals, and sets the exit code.
import { text } from 'node:stream/consumers';
import { runCli } from './program.js';

// Ctrl-C (or SIGTERM) aborts what the command is doing, so a watch ends tidily (cursor shown,
// where the rollout stands printed) with exit code 130. `once`: a second Ctrl-C kills at once.
const interrupt = new AbortController();
const onSignal = (): void => interrupt.abort();
process.once('SIGINT', onSignal);
process.once('SIGTERM', onSignal);

const noColor = process.env['NO_COLOR'];
process.exitCode = await runCli(process.argv.slice(2), {
  stdout: {
    write: (chunk) => void process.stdout.write(chunk),
    isTTY: process.stdout.isTTY === true,
    get columns() {
      return process.stdout.columns;
    },
    get rows() {
      return process.stdout.rows;
    },
  },
  stderr: { write: (chunk) => void process.stderr.write(chunk) },
  readStdin: () => text(process.stdin),
  env: { url: process.env['OUTPOST_URL'], token: process.env['OUTPOST_TOKEN'], noColor: noColor !== undefined && noColor !== '' },
  now: Date.now,
  signal: interrupt.signal,
});
process.off('SIGINT', onSignal);
process.off('SIGTERM', onSignal);
