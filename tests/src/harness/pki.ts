import { execFileSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

// Throwaway certificates made by the openssl CLI (P-256 keys, one day): a CA, server
// certificates for 127.0.0.1/localhost and client certificates, for the TLS of NATS and MQTT
// in tests and the demo. Keys are written 0600, as a real deployment would keep them.

/** A certificate and its key, as file paths. */
export interface CertFiles {
  cert: string;
  key: string;
}

export interface Pki {
  /** The CA certificate (PEM file) clients trust. */
  readonly caCert: string;
  /** A server certificate for `hosts` (default 127.0.0.1 and localhost), signed by the CA. */
  server(name: string, hosts?: readonly string[]): CertFiles;
  /** A client certificate whose CN is `commonName`, signed by the CA. */
  client(name: string, commonName: string): CertFiles;
}

/**
 * A new CA named `caName` in `dir` (which must exist).
 * @throws when openssl is missing or fails (its stderr in the message).
 */
export function createPki(dir: string, caName = 'outpost-test-ca'): Pki {
  const openssl = (args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  };
  const at = (file: string): string => join(dir, file);
  const newKeyAndCsr = (name: string, subject: string): void => {
    openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject]);
    chmodSync(at(`${name}.key`), 0o600);
  };
  const sign = (name: string, extensions: string): CertFiles => {
    writeFileSync(at(`${name}.ext`), `${extensions}\n`);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${caName}.crt`, '-CAkey', `${caName}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', '-extfile', `${name}.ext`]);
    return { cert: at(`${name}.crt`), key: at(`${name}.key`) };
  };
  openssl([
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', `${caName}.key`, '-out', `${caName}.crt`, '-days', '1', '-subj', `/CN=${caName}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  chmodSync(at(`${caName}.key`), 0o600);
  return {
    caCert: at(`${caName}.crt`),
    server(name, hosts = ['127.0.0.1', 'localhost']) {
      newKeyAndCsr(name, `/CN=${hosts[0] ?? name}`);
      const sans = hosts.map((h) => (/^[\d.]+$|:/.test(h) ? `IP:${h}` : `DNS:${h}`)).join(',');
      return sign(name, `subjectAltName=${sans}\nextendedKeyUsage=serverAuth`);
    },
    client(name, commonName) {
      newKeyAndCsr(name, `/CN=${commonName}`);
      return sign(name, 'extendedKeyUsage=clientAuth');
    },
  };
}
