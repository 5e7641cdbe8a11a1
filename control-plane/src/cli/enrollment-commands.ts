// `outpostctl agents enroll ID --labels k=v --out FILE` and `outpostctl agents revoke ID`
// (DESIGN section 4). The bundle holds the agent's NATS credentials: it goes to FILE, written
// 0600 through a temp file and a rename, and is never printed, not even with --json.
import { access } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { AgentIdSchema, EnrollmentBundleSchema, RevocationResponseSchema, writeSecretFile } from '@outpost/shared';
import { checkId, expectBody, usage, type CommandKit } from './command-kit.js';
import { formatFields } from './table.js';
import { formatTime } from './time.js';

const LABEL = /^([a-z0-9_.-]{1,63})=(.{0,256})$/;

/** `k=v` pairs from every --labels (each a comma-separated list). */
export function parseLabels(values: readonly string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const pair of values.flatMap((v) => v.split(',')).filter((p) => p !== '')) {
    const match = LABEL.exec(pair);
    if (match === null) throw usage(`--labels: ${JSON.stringify(pair)} is not name=value (names are lowercase [a-z0-9_.-], values up to 256 characters)`);
    labels[match[1]!] = match[2]!;
  }
  return labels;
}

const exists = (path: string): Promise<boolean> =>
  access(path).then(
    () => true,
    () => false,
  );

export function registerEnrollmentCommands(agents: Command, kit: CommandKit): void {
  const { out, printJson, context } = kit;
  agents
    .command('enroll')
    .description("enrol an agent: mint its NATS identity and write its bundle (credentials, servers, CA, trusted model keys) to a 0600 file its config names as uplink.enrollmentFile; enrolling again rotates its key")
    .argument('<agentId>')
    .requiredOption('--out <file>', 'where to write the bundle (a secret: never printed)')
    .option('--labels <k=v,...>', 'labels for the agent (repeatable); without it a re-enrolment keeps the previous ones', (value: string, previous: string[]) => [...previous, value], [] as string[])
    .option('--force', 'overwrite an existing file (re-enrolment: the key in it is revoked anyway)')
    .action(async (agentId: string, opts: { out: string; labels: string[]; force?: boolean }, command: Command) => {
      const id = checkId(AgentIdSchema, 'agent id', agentId);
      const labels = parseLabels(opts.labels);
      const path = resolve(opts.out);
      if (opts.force !== true && (await exists(path))) throw usage(`--out: ${path} exists; give --force to overwrite it`);
      const c = context(command);
      // No --labels: a re-enrolment keeps the labels of the previous one.
      const { body } = await c.api.post(`/api/agents/${encodeURIComponent(id)}/enroll`, opts.labels.length === 0 ? {} : { labels });
      const bundle = expectBody(EnrollmentBundleSchema, body, 'agents enroll');
      await writeSecretFile(path, `${JSON.stringify(bundle, null, 2)}\n`);
      const summary = { agentId: bundle.agentId, bundleFile: path, userPublicKey: bundle.userPublicKey, servers: bundle.servers, labels: bundle.labels, trustedKeys: bundle.trustedKeys.map((k) => k.keyId), issuedAtMs: bundle.issuedAtMs };
      if (c.json) return printJson(summary);
      out(
        formatFields([
          ['Agent', `${bundle.agentId} enrolled`],
          ['Bundle', `${path} (mode 600; copy it to the gateway and point uplink.enrollmentFile at it)`],
          ['NATS user', bundle.userPublicKey],
          ['Servers', bundle.servers.join(', ')],
          ['TLS', bundle.caPem === undefined ? 'no CA in the bundle (plain NATS)' : 'server checked against the CA in the bundle'],
          ['Labels', Object.entries(bundle.labels).map(([k, v]) => `${k}=${v}`).join(',') || '-'],
          ['Model keys', bundle.trustedKeys.map((k) => k.keyId).join(', ') || '-'],
        ]),
      );
    });
  agents
    .command('revoke')
    .description("revoke an agent's NATS identity: NATS drops its live connections and refuses its credentials from now on (enrol it again to give it a new one)")
    .argument('<agentId>')
    .action(async (agentId: string, _opts, command: Command) => {
      const id = checkId(AgentIdSchema, 'agent id', agentId);
      const c = context(command);
      const { body } = await c.api.post(`/api/agents/${encodeURIComponent(id)}/revoke`, undefined);
      if (c.json) return printJson(body);
      const revoked = expectBody(RevocationResponseSchema, body, 'agents revoke');
      out(formatFields([
        ['Agent', `${revoked.agentId} revoked`],
        ['NATS user', `${revoked.userPublicKey} refused since ${formatTime(revoked.revokedAtMs)}`],
      ]));
    });
}
