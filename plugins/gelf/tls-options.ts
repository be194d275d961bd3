// TLS client options shared by tls:// and https:// endpoints, read once at start.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { checkServerIdentity, type ConnectionOptions, type PeerCertificate } from 'node:tls';
import type { GelfConfig } from './config.js';

export function tlsOptions(config: GelfConfig['tls'], host: string): ConnectionOptions {
  const read = (file: string | undefined) => (file === undefined ? undefined : readFileSync(file));
  const servername = config.server_name_override ?? (isIP(host) ? undefined : host);
  return {
    ca: read(config.ca_file),
    cert: read(config.cert_file),
    key: read(config.key_file),
    rejectUnauthorized: !config.insecure_skip_verify,
    ...(servername ? { servername } : {}),
    // Verify against the override name when one is given (an IP endpoint with a named certificate).
    ...(config.server_name_override ? { checkServerIdentity: checkAgainst(config.server_name_override) } : {}),
  };
}

function checkAgainst(name: string) {
  return (_host: string, cert: PeerCertificate) => checkServerIdentity(name, cert);
}
