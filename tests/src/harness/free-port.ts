import { createServer } from 'node:net';

/**
 * Asks the kernel for a currently free TCP port on `host` (bind to port 0, read it, close).
 * The port can be taken by someone else before the caller binds it, so callers that cannot
 * use `port: -1`-style binding (mosquitto) must detect "address in use" and retry.
 */
export function getFreePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host, port: 0, exclusive: true }, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error(`Could not read the port bound on ${host}`));
        return;
      }
      server.close((err) => (err ? reject(err) : resolve(address.port)));
    });
  });
}
