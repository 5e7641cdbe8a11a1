/**
 * The V8 heap flags the agent process runs with (issue [perf], docs/PERFORMANCE.md), given on
 * the node command line: the shebang of main.ts, the test harness and the demo launcher pass
 * them. V8 sizes its heap when the process starts, so they cannot be set from inside it
 * (v8.setFlagsFromString is too late for them: measured, no effect).
 *
 * - `--max-semi-space-size=2` (MB): Node 20 gives the young generation two 16 MB semi-spaces,
 *   32 MB of RSS even idle; 2 MB semi-spaces cost no throughput in the bench (scavenges are
 *   more frequent, each as short: a message's objects die within its commit).
 * - `--max-old-space-size=128` (MB): without a limit V8 let the old generation grow to 90-125 MB
 *   under load before collecting (agent RSS 180-250 MB); with it the old generation stays
 *   near 40-50 MB (RSS about 125 MB at 10k msg/s). 128 leaves room for the agent's own state at
 *   scale (resend windows of 4,096 devices are about 16 MB, feature windows and sessions of
 *   thousands of devices a few tens more); a gateway with far more devices raises it with
 *   NODE_OPTIONS.
 */
export const AGENT_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2', '--max-old-space-size=128'];
