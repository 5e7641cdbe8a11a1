import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

// Honest manifests: every package a workspace's code imports is declared in that workspace's
// package.json, so nothing works only because npm hoisted another workspace's dependency.
// Product code needs it in `dependencies`; tests and build config may use `devDependencies`.

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const ROOT_MANIFEST = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { workspaces: string[] };

interface Manifest {
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}

/** Source files of a workspace, without build output and installed packages. */
function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    if (entry.name === 'node_modules' || entry.name === 'dist') return [];
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return /\.(ts|tsx|mts)$/.test(entry.name) && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

/** `@scope/name` or `name` of a bare specifier; undefined for relative paths and Node built-ins. */
function packageOf(specifier: string): string | undefined {
  if (specifier.startsWith('.') || specifier.startsWith('/') || specifier.startsWith('node:')) return undefined;
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

/** Test files, and every file of the tests workspace, may rely on devDependencies; so may build config. */
function isDevOnly(workspace: string, file: string): boolean {
  return workspace === 'tests' || /\.test\.tsx?$/.test(file) || /(^|\/)vite\.config\.ts$/.test(file);
}

describe('workspace manifests', () => {
  it.each(ROOT_MANIFEST.workspaces)('%s declares every package its code imports', (workspace) => {
    const dir = join(REPO_ROOT, workspace);
    const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Manifest;
    const undeclared = new Map<string, string>();
    for (const file of sourceFiles(dir)) {
      const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
      for (const { fileName } of importedFiles) {
        const pkg = packageOf(fileName);
        if (pkg === undefined) continue;
        const declared = manifest.dependencies?.[pkg] !== undefined || (isDevOnly(workspace, file) && manifest.devDependencies?.[pkg] !== undefined);
        if (!declared && !undeclared.has(pkg)) undeclared.set(pkg, relative(REPO_ROOT, file));
      }
    }
    expect([...undeclared].map(([pkg, file]) => `${pkg} (imported by ${file})`).sort(), `${workspace}/package.json must declare`).toEqual([]);
  });
});
