// Runs after `npm run build` (the root package.json's postbuild): makes `npx outpostctl`,
// `npx outpost-sim`, `npx outpost-agent` and `npx outpost-control-plane` resolve to this
// checkout (issue [install], item 6).
//
// Why it is needed: npm links the workspaces' bins into node_modules/.bin at install time, but
// bin-links skips a bin whose file does not exist yet (lib/link-gently.js: "if the script isn't
// there, just ignore it"), and ours are build outputs (dist/). So after a fresh `npm ci` the
// links are missing and npx looks the names up in the registry. Once the build has written
// them, `npm rebuild --ignore-scripts <workspaces>` links the bins and makes their targets
// executable (tsc writes new files 0644), running no install script. When every link is in
// place and executable, this costs one stat per bin.
import { execFileSync } from 'node:child_process';
import { accessSync, constants, lstatSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** @param {string} file */
function readJson(file) {
  return JSON.parse(readFileSync(file, 'utf8'));
}

/** @param {string} file @param {number} mode */
function can(file, mode) {
  try {
    accessSync(file, mode);
    return true;
  } catch {
    return false;
  }
}

/** @type {string[]} workspaces with a bin that is built but not linked (or not executable) */
const stale = [];
for (const workspace of readJson(join(ROOT, 'package.json')).workspaces) {
  const pkg = readJson(join(ROOT, workspace, 'package.json'));
  const bins = typeof pkg.bin === 'string' ? { [pkg.name.split('/').pop()]: pkg.bin } : (pkg.bin ?? {});
  for (const [name, target] of Object.entries(bins)) {
    const file = join(ROOT, workspace, target);
    if (!can(file, constants.F_OK)) continue; // not built (yet): nothing to link
    let linked = true;
    try {
      lstatSync(join(ROOT, 'node_modules/.bin', name));
    } catch {
      linked = false;
    }
    if (!linked || !can(file, constants.X_OK)) {
      stale.push(pkg.name);
      break;
    }
  }
}

if (stale.length > 0) {
  process.stderr.write(`link-bins: linking the bins of ${stale.join(', ')} into node_modules/.bin (npm rebuild --ignore-scripts)\n`);
  execFileSync('npm', ['rebuild', '--ignore-scripts', ...stale], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
}
