// @ts-check
/**
 * Builds the self-contained outpost-agent package for linux-x64 (issue [install]): a .deb and
 * a .tar.gz with the same files, installable without any network access.
 *
 *   node agent/packaging/build-package.js [--out DIR] [--fast]
 *
 * DIR defaults to dist-packages/. --fast compresses both with gzip -1 instead of xz and gzip -9
 * (same files; for tests, where xz costs minutes on two shared cores). The last line on stdout
 * is a JSON summary (paths and sizes).
 *
 * `npm run package` runs `npm run build` first: the bundle is made from the agent's built
 * JavaScript (agent/dist), the same code the tests run.
 *
 * What goes in (paths inside the package):
 *   usr/bin/outpost-agent                 sh wrapper: the packaged node, the agent's node flags, main.js
 *   usr/lib/outpost-agent/main.js         the agent and every JavaScript dependency, one ESM file (esbuild)
 *   usr/lib/outpost-agent/inference-child.js   the inference process's entry (forked beside main.js)
 *   usr/lib/outpost-agent/native/         sqlite3's addon, onnxruntime-node's binding and its CPU library
 *   usr/lib/outpost-agent/bin/node        the Node runtime that runs this script (stripped)
 *   usr/lib/systemd/system/outpost-agent.service, usr/lib/sysusers.d/outpost-agent.conf
 *   usr/share/outpost-agent/agent.example.yaml
 *
 * Why the node binary and not a single executable (SEA): in Node 20 SEA is experimental, its
 * blob holds one CommonJS script (the agent is ESM with top-level await), native addons still
 * have to be files on disk, and the inference child would have to be the same executable
 * dispatching on an argument. The size is the same either way: a SEA is this node binary plus
 * the script.
 *
 * The host must be linux-x64 with glibc: the runtime and the addons are the ones installed
 * here (sqlite3 compiled by `npm ci`). The .deb's Depends lists the glibc and libstdc++
 * versions they need, read from their ELF symbol versions.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const HERE = dirname(fileURLToPath(import.meta.url));
const AGENT = resolve(HERE, '..');
const REPO = resolve(AGENT, '..');
const PACKAGE_NAME = 'outpost-agent';
const LIB = `usr/lib/${PACKAGE_NAME}`;
/** The oldest Node the agent supports (root package.json engines). */
const MIN_NODE = [20, 19];

/** @param {string} message @returns {never} */
function fail(message) {
  process.stderr.write(`build-package: ${message}\n`);
  process.exit(1);
}

/** @param {string[]} argv */
function parseArgs(argv) {
  let out = join(REPO, 'dist-packages');
  let fast = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--out' && argv[i + 1] !== undefined) out = resolve(argv[++i] ?? '');
    else if (arg === '--fast') fast = true;
    else fail(`unknown argument ${arg}; usage: build-package.js [--out DIR] [--fast]`);
  }
  return { out, fast };
}

/** @param {string} file @param {string} [what] */
function run(file, args = /** @type {string[]} */ ([]), what = file) {
  try {
    return execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 });
  } catch (error) {
    const err = /** @type {{ stderr?: string, message: string }} */ (error);
    return fail(`${what} failed: ${err.stderr?.trim() || err.message}`);
  }
}

/** @param {string} name */
function hasCommand(name) {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function checkHost() {
  if (process.platform !== 'linux' || process.arch !== 'x64') fail(`the package is for linux-x64; this is ${process.platform}-${process.arch}`);
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  if (major < (MIN_NODE[0] ?? 0) || (major === MIN_NODE[0] && minor < (MIN_NODE[1] ?? 0))) fail(`node ${process.version} is older than the ${MIN_NODE.join('.')} the agent supports; the package ships the node that runs this script`);
  for (const tool of ['dpkg-deb', 'tar', 'gzip', 'objdump']) if (!hasCommand(tool)) fail(`${tool} is needed (Debian: apt-get install dpkg tar gzip binutils)`);
  for (const file of ['dist/main.js', 'dist/inference/inference-child.js']) if (!existsSync(join(AGENT, file))) fail(`agent/${file} is missing: run \`npm run build\` first`);
}

/** The agent's version: agent/package.json, which must agree with AGENT_VERSION (heartbeats report that one). */
async function agentVersion() {
  const version = /** @type {{ version: string }} */ (JSON.parse(readFileSync(join(AGENT, 'package.json'), 'utf8'))).version;
  const { AGENT_VERSION } = /** @type {{ AGENT_VERSION: string }} */ (await import(join(AGENT, 'dist/version.js')));
  if (AGENT_VERSION !== version) fail(`agent/package.json says ${version} but AGENT_VERSION (agent/src/version.ts) says ${AGENT_VERSION}: keep them in step`);
  if (!/^\d+\.\d+\.\d+([~+][0-9A-Za-z.+~-]+)?$/.test(version)) fail(`version ${version} is not a Debian version`);
  return version;
}

/**
 * The node flags the agent runs with: its own shebang (`#!/usr/bin/env -S node <flags>`), which
 * is how it runs as a plain executable. Only `--flag` and `--flag=value` words are accepted.
 */
function nodeFlags() {
  const first = readFileSync(join(AGENT, 'dist/main.js'), 'utf8').split('\n', 1)[0] ?? '';
  const match = /^#!\/usr\/bin\/env\s+(?:-S\s+)?node((?:\s+\S+)*)\s*$/.exec(first);
  if (match === null) return [];
  const flags = (match[1] ?? '').trim().split(/\s+/).filter((f) => f !== '');
  for (const flag of flags) if (!/^--[a-z0-9-]+(=[A-Za-z0-9._:-]+)?$/.test(flag)) fail(`unexpected node flag ${JSON.stringify(flag)} in the shebang of agent/dist/main.js`);
  return flags;
}

/**
 * esbuild plugin: the two native addons are loaded from `native/` beside the bundle instead of
 * their packages' own lookups (`bindings` walks the caller's directories; onnxruntime-node
 * builds a path from platform and arch). Each rewrite checks the code it replaces, so a
 * changed loader fails the build instead of the gateway.
 * @returns {import('esbuild').Plugin}
 */
function nativeAddonsPlugin() {
  /** @type {{ filter: RegExp, original: RegExp, addon: string }[]} */
  const loaders = [
    { filter: /[\\/]sqlite3[\\/]lib[\\/]sqlite3-binding\.js$/, original: /require\('bindings'\)\('node_sqlite3\.node'\)/, addon: 'node_sqlite3.node' },
    {
      filter: /[\\/]onnxruntime-node[\\/]dist[\\/]binding\.js$/,
      original: /require\(`\.\.\/bin\/napi-v6\/\$\{process\.platform\}\/\$\{process\.arch\}\/onnxruntime_binding\.node`\)/,
      addon: 'onnxruntime_binding.node',
    },
  ];
  return {
    name: 'outpost-native-addons',
    setup(b) {
      for (const { filter, original, addon } of loaders) {
        b.onLoad({ filter }, (args) => {
          const source = readFileSync(args.path, 'utf8');
          if (!original.test(source)) return { errors: [{ text: `${args.path} no longer loads its addon as expected (${original}); update agent/packaging/build-package.js` }] };
          return { contents: source.replace(original, `require(__outpostNative(${JSON.stringify(addon)}))`), loader: 'js' };
        });
      }
    },
  };
}

/**
 * Defined at the top of each bundle: `require` for the CommonJS dependencies esbuild wraps
 * (an ESM bundle has none), `__dirname`/`__filename` for those that read them, and where the
 * native addons are.
 */
const BANNER = [
  "import { createRequire as __outpostCreateRequire } from 'node:module';",
  "import { dirname as __outpostDirname, join as __outpostJoin } from 'node:path';",
  "import { fileURLToPath as __outpostFileURLToPath } from 'node:url';",
  'const require = __outpostCreateRequire(import.meta.url);',
  'const __filename = __outpostFileURLToPath(import.meta.url);',
  'const __dirname = __outpostDirname(__filename);',
  "const __outpostNative = (name) => __outpostJoin(__dirname, 'native', name);",
].join('\n');

/** @param {string} libDir */
async function bundle(libDir) {
  const result = await build({
    absWorkingDir: REPO,
    entryPoints: { main: join(AGENT, 'dist/main.js'), 'inference-child': join(AGENT, 'dist/inference/inference-child.js') },
    outdir: libDir,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    banner: { js: BANNER },
    // Optional speed-ups of `ws` (mqtt.js's bridge over websockets), required inside try/catch.
    external: ['bufferutil', 'utf-8-validate'],
    plugins: [nativeAddonsPlugin()],
    // Readable stack traces in the journal; the size goes into the compressed package at a ratio of ~5.
    minify: false,
    keepNames: true,
    legalComments: 'none',
    metafile: true,
    logLevel: 'warning',
  });
  // The runtime reads .js as ESM only under a package.json that says so.
  writeFileSync(join(libDir, 'package.json'), `${JSON.stringify({ name: `${PACKAGE_NAME}-bundle`, private: true, type: 'module' }, null, 2)}\n`);
  return result.metafile;
}

/** The addon files: sqlite3's (built by npm ci on this host) and onnxruntime-node's CPU runtime. */
function nativeFiles() {
  const agentRequire = createRequire(join(AGENT, 'package.json'));
  const sqliteDir = dirname(agentRequire.resolve('sqlite3/package.json'));
  const ortDir = join(dirname(agentRequire.resolve('onnxruntime-node/package.json')), 'bin/napi-v6/linux/x64');
  const files = [join(sqliteDir, 'build/Release/node_sqlite3.node'), join(ortDir, 'onnxruntime_binding.node')];
  // The binding finds libonnxruntime.so.1 through its RUNPATH $ORIGIN: it goes beside it.
  for (const name of readdirSync(ortDir)) if (/^libonnxruntime\.so(\.\d+)*$/.test(name)) files.push(join(ortDir, name));
  for (const file of files) if (!existsSync(file)) fail(`${file} is missing (did npm ci build sqlite3 and install onnxruntime-node?)`);
  if (!files.some((f) => basename(f).startsWith('libonnxruntime.so'))) fail(`no libonnxruntime.so in ${ortDir}`);
  return files;
}

/**
 * Licence texts of what the package ships: every npm package the bundle took code from, the
 * native libraries, and Node.js.
 * @param {import('esbuild').Metafile} metafile
 */
function thirdPartyNotices(metafile) {
  /** @type {Set<string>} */
  const dirs = new Set();
  for (const input of Object.keys(metafile.inputs)) {
    const match = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (match?.[1] !== undefined) dirs.add(resolve(REPO, match[1]));
  }
  const agentRequire = createRequire(join(AGENT, 'package.json'));
  dirs.add(dirname(agentRequire.resolve('onnxruntime-node/package.json')));
  dirs.add(dirname(agentRequire.resolve('sqlite3/package.json')));
  const sections = [];
  for (const dir of [...dirs].sort()) {
    const pkg = /** @type {{ name: string, version: string, license?: string }} */ (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')));
    const licenseFile = readdirSync(dir).find((f) => /^(licen[cs]e|copying)(\.|$)/i.test(f));
    const text = licenseFile === undefined ? `License: ${pkg.license ?? 'see the package'} (no licence file in the package)` : readFileSync(join(dir, licenseFile), 'utf8').trim();
    sections.push(`${pkg.name}@${pkg.version}\n\n${text}`);
  }
  const nodeLicense = [join(dirname(process.execPath), '../share/doc/node/LICENSE'), '/usr/share/doc/nodejs/LICENSE'].find((f) => existsSync(f));
  sections.push(`Node.js ${process.version}\n\n${nodeLicense === undefined ? `MIT and others: https://github.com/nodejs/node/blob/${process.version}/LICENSE` : readFileSync(nodeLicense, 'utf8').trim()}`);
  return `Third-party software in the outpost-agent package\n\n${sections.join(`\n\n${'-'.repeat(78)}\n\n`)}\n`;
}

/**
 * The newest glibc and libstdc++ symbol versions the shipped ELF files need, for Depends.
 * @param {string[]} elfFiles
 */
function sharedLibraryDepends(elfFiles) {
  /** @type {Record<string, number[]>} */
  const newest = { GLIBC: [0], GLIBCXX: [0] };
  for (const file of elfFiles) {
    for (const [, lib, version] of run('objdump', ['-T', file]).matchAll(/\b(GLIBC|GLIBCXX)_([0-9.]+)\b/g)) {
      const parts = (version ?? '').split('.').map(Number);
      const key = lib ?? '';
      if (compareVersions(parts, newest[key] ?? [0]) > 0) newest[key] = parts;
    }
  }
  // GLIBCXX 3.4.n ships with GCC; Debian's libstdc++6 version starts with the GCC version.
  const gccForGlibcxx = /** @type {Record<number, string>} */ ({ 21: '5', 22: '6', 23: '7', 24: '7', 25: '8', 26: '9', 27: '9', 28: '10', 29: '11', 30: '12', 31: '13', 32: '14' });
  const glibcxx = newest['GLIBCXX'] ?? [0];
  const gcc = glibcxx[0] === 3 && glibcxx[1] === 4 ? gccForGlibcxx[glibcxx[2] ?? 0] : undefined;
  return [`libc6 (>= ${(newest['GLIBC'] ?? [0]).join('.')})`, 'libgcc-s1', gcc === undefined ? 'libstdc++6' : `libstdc++6 (>= ${gcc})`].join(', ');
}

/** @param {number[]} a @param {number[]} b */
function compareVersions(a, b) {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** @param {string} dir @returns {string[]} every file under dir */
function walk(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]));
}

/** @param {string} from @param {string} to @param {number} mode */
function install(from, to, mode) {
  mkdirSync(dirname(to), { recursive: true });
  copyFileSync(from, to);
  chmodSync(to, mode);
}

/** Commit time of HEAD (reproducible mtimes), or now outside a git checkout. */
function sourceDateEpoch() {
  const fromEnv = Number(process.env['SOURCE_DATE_EPOCH']);
  if (Number.isInteger(fromEnv) && fromEnv > 0) return fromEnv;
  try {
    return Number(execFileSync('git', ['-C', REPO, 'log', '-1', '--format=%ct'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
  } catch {
    return Math.floor(Date.now() / 1000);
  }
}

/** @param {number} bytes */
const mib = (bytes) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

async function main() {
  const { out, fast } = parseArgs(process.argv.slice(2));
  const startedMs = Date.now();
  /** @param {string} what */
  const step = (what) => process.stderr.write(`build-package: ${what} (${((Date.now() - startedMs) / 1000).toFixed(1)} s)\n`);
  checkHost();
  const version = await agentVersion();
  mkdirSync(out, { recursive: true });
  const stage = mkdtempSync(join(out, '.stage-'));
  try {
    const root = join(stage, 'root');
    const libDir = join(root, LIB);
    const metafile = await bundle(libDir);
    step('bundled');

    const natives = nativeFiles();
    for (const file of natives) install(file, join(libDir, 'native', basename(file)), 0o644);
    install(process.execPath, join(libDir, 'bin/node'), 0o755);
    // Debug info is most of an unstripped node (~12 MB); the dynamic symbols addons link against stay.
    if (hasCommand('strip')) run('strip', ['--strip-all', join(libDir, 'bin/node')], 'strip node');
    writeFileSync(join(libDir, 'THIRD-PARTY-NOTICES.txt'), thirdPartyNotices(metafile));
    writeFileSync(join(libDir, 'build-info.json'), `${JSON.stringify({ package: PACKAGE_NAME, version, node: process.version, target: 'linux-x64' }, null, 2)}\n`);

    const flags = nodeFlags();
    const wrapper = readFileSync(join(HERE, 'outpost-agent.sh'), 'utf8').replace('@NODE_FLAGS@ ', flags.length === 0 ? '' : `${flags.join(' ')} `);
    mkdirSync(join(root, 'usr/bin'), { recursive: true });
    writeFileSync(join(root, 'usr/bin', PACKAGE_NAME), wrapper, { mode: 0o755 });
    install(join(HERE, 'outpost-agent.service'), join(root, 'usr/lib/systemd/system/outpost-agent.service'), 0o644);
    install(join(HERE, 'outpost-agent.sysusers'), join(root, 'usr/lib/sysusers.d/outpost-agent.conf'), 0o644);
    install(join(HERE, 'agent.example.yaml'), join(root, 'usr/share/outpost-agent/agent.example.yaml'), 0o644);

    const files = walk(root);
    const installedBytes = files.reduce((sum, f) => sum + statSync(f).size, 0);
    const epoch = sourceDateEpoch();
    for (const file of files) utimesSync(file, epoch, epoch);

    // The .deb: its control data beside the files (dpkg-deb --build takes DEBIAN/ from the root).
    const debian = join(root, 'DEBIAN');
    mkdirSync(debian);
    const control = [
      `Package: ${PACKAGE_NAME}`,
      `Version: ${version}`,
      'Architecture: amd64',
      'Maintainer: Outpost maintainers <outpost@example.invalid>',
      `Installed-Size: ${files.reduce((sum, f) => sum + Math.ceil(statSync(f).size / 1024), 0)}`,
      `Depends: ${sharedLibraryDepends([join(libDir, 'bin/node'), ...natives.map((f) => join(libDir, 'native', basename(f)))])}`,
      'Recommends: systemd',
      'Section: net',
      'Priority: optional',
      'Description: Outpost edge agent: MQTT ingest, durable outbox, local inference, uplink',
      ` Self-contained: brings its own Node.js ${process.version} runtime, sqlite3 and the ONNX`,
      ' Runtime CPU library; installing it downloads nothing. Runs as the outpost-agent',
      ' systemd service (user outpost, config in /etc/outpost, data in /var/lib/outpost).',
      '',
    ].join('\n');
    writeFileSync(join(debian, 'control'), control);
    for (const script of ['postinst', 'prerm', 'postrm']) install(join(HERE, 'debian', script), join(debian, script), 0o755);

    const deb = join(out, `${PACKAGE_NAME}_${version}_amd64.deb`);
    step('files staged');
    run('dpkg-deb', ['--root-owner-group', ...(fast ? ['-Zgzip', '-z1'] : ['-Zxz']), '--build', root, deb], 'dpkg-deb --build');
    step(`${basename(deb)} built`);
    const tarball = join(out, `${PACKAGE_NAME}-${version}-linux-x64.tar.gz`);
    // Same files, same order and owner as the .deb's data.tar.
    const tarArgs = ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', `--mtime=@${epoch}`, '--exclude=./DEBIAN', '-C', root, '-cf', '-', '.'];
    execFileSync('sh', ['-c', `tar "$@" | gzip ${fast ? '-1' : '-9'}n > "$OUT"`, 'tar', ...tarArgs], { env: { ...process.env, OUT: tarball }, stdio: ['ignore', 'inherit', 'inherit'] });
    step(`${basename(tarball)} built`);

    const summary = { version, deb, tarball, debBytes: statSync(deb).size, tarballBytes: statSync(tarball).size, installedBytes, node: process.version, nodeFlags: flags };
    process.stderr.write(`${relative(process.cwd(), deb)}: ${mib(summary.debBytes)}\n${relative(process.cwd(), tarball)}: ${mib(summary.tarballBytes)}\ninstalled: ${mib(installedBytes)} (node ${mib(statSync(join(libDir, 'bin/node')).size)})\n`);
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

await main();
