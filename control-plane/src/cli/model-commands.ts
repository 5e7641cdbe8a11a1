// `outpostctl models publish|ls`: signed models into the control plane's model store, and what
// it holds. The manifest and the .onnx are sent as they are; the control plane checks the
// manifest's form, the digest and (with trusted keys) the signature.
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { MAX_MODEL_UPLOAD_BYTES, ModelEntrySchema, ModelListResponseSchema } from '@outpost/shared';
import { expectBody, usage, type CommandKit } from './command-kit.js';
import { formatModelEntry, formatModelList } from './rollout-format.js';

const MANIFEST_SUFFIX = '.manifest.json';

/** The .onnx beside a manifest: `dir/name.manifest.json` -> `dir/name.onnx`. */
export function onnxBesideManifest(manifestPath: string): string | undefined {
  return manifestPath.endsWith(MANIFEST_SUFFIX) ? `${manifestPath.slice(0, -MANIFEST_SUFFIX.length)}.onnx` : undefined;
}

async function readInput(path: string, what: string, hint = ''): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (cause) {
    throw usage(`cannot read ${what} ${path}: ${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}${hint}`);
  }
}

export function registerModelCommands(program: Command, kit: CommandKit): void {
  const { out, printJson, context, io } = kit;
  const models = program.command('models').description('signed models in the model store');

  models
    .command('publish')
    .description('upload a signed model: FILE is its manifest (NAME.manifest.json), the .onnx is NAME.onnx beside it or --onnx')
    .argument('<file>', 'the signed manifest, e.g. anomaly-2.0.0.manifest.json')
    .option('--onnx <path>', 'the ONNX file (default: beside the manifest, same base name, .onnx)')
    .action(async (file: string, opts: { onnx?: string }, command: Command) => {
      const onnxPath = opts.onnx ?? onnxBesideManifest(file);
      if (onnxPath === undefined) throw usage(`models publish: ${file} is not named *${MANIFEST_SUFFIX}; give the model with --onnx PATH`);
      const manifestText = (await readInput(file, 'the manifest')).toString('utf8');
      let manifest: unknown;
      try {
        manifest = JSON.parse(manifestText);
      } catch (cause) {
        throw usage(`${file}: not JSON (a signed manifest is the JSON file \`npm run -w models sign\` writes): ${(cause as Error).message}`);
      }
      const onnx = await readInput(onnxPath, 'the model', opts.onnx === undefined ? ' (looked beside the manifest; give it with --onnx PATH)' : '');
      if (onnx.length > MAX_MODEL_UPLOAD_BYTES) throw usage(`${onnxPath}: ${onnx.length} bytes, the control plane takes at most ${MAX_MODEL_UPLOAD_BYTES}`);
      const c = context(command);
      const answer = await c.api.post('/api/models', { manifest, onnxBase64: onnx.toString('base64') });
      if (c.json) return printJson(answer.body);
      out(formatModelEntry(expectBody(ModelEntrySchema, answer.body, 'models publish'), answer.status === 201, c.style));
    });

  models
    .command('ls')
    .description('list the stored models: name, version, sha256, size, signing key, stored, expires')
    .action(async (_opts, command: Command) => {
      const c = context(command);
      const body = await c.api.get('/api/models');
      if (c.json) return printJson(body);
      out(formatModelList(expectBody(ModelListResponseSchema, body, 'models ls'), io.now(), c.style));
    });
}
