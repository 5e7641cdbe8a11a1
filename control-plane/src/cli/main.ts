#!/usr/bin/env node
// Composition root of `outpostctl`: the only CLI file that reads process.env, stdin and the
// terminal, and sets the exit code.
import { text } from 'node:stream/consumers';
import { runCli } from './program.js';

const noColor = process.env['NO_COLOR'];
process.exitCode = await runCli(process.argv.slice(2), {
  stdout: { write: (chunk) => void process.stdout.write(chunk), isTTY: process.stdout.isTTY === true },
  stderr: { write: (chunk) => void process.stderr.write(chunk) },
  readStdin: () => text(process.stdin),
  env: { url: process.env['OUTPOST_URL'], token: process.env['OUTPOST_TOKEN'], noColor: noColor !== undefined && noColor !== '' },
  now: Date.now,
});
