// The broker limit of the bench, as a process of its own (issue [perf]): plain aedes, no auth
// hooks, no validation, no storage, with one in-process subscriber to the device telemetry, so
// every QoS 1 publish is routed once. Nothing else runs in this process: the load generator
// and the bench are elsewhere, as they are for the agent.
//
// Started by aedes-raw.ts with an IPC channel: sends `{ event: 'ready', port }` once listening;
// answers `{ cmd: 'delivered' }` with `{ delivered }`; exits when the channel closes.
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { Aedes } from 'aedes';

const broker = await Aedes.createBroker();
let delivered = 0;
await new Promise<void>((resolve) =>
  broker.subscribe(
    'devices/+/telemetry',
    (_packet, callback) => {
      delivered += 1;
      callback();
    },
    resolve,
  ),
);
const server = net.createServer((socket) => {
  socket.setNoDelay(true); // as the agent's embedded broker does
  broker.handle(socket);
});
await new Promise<void>((resolve, reject) => {
  server.once('error', reject);
  server.listen(0, '127.0.0.1', () => resolve());
});
process.on('message', (message: { cmd?: string }) => {
  if (message.cmd === 'delivered') process.send?.({ delivered });
});
process.on('disconnect', () => process.exit(0));
process.send?.({ event: 'ready', port: (server.address() as AddressInfo).port });
