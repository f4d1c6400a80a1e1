import type { NetworkInterfaceInfo } from 'node:os';

/**
 * The address to advertise when none is configured: the first non-internal IPv4 address, in the
 * interfaces' order. A loopback address would make every other host call itself.
 */
export function detectAdvertisedAddress(interfaces: NodeJS.Dict<NetworkInterfaceInfo[]>): string | undefined {
  for (const name of Object.keys(interfaces)) {
    for (const info of interfaces[name] ?? []) {
      if (info.family === 'IPv4' && !info.internal && !info.address.startsWith('169.254.')) return info.address;
    }
  }
  return undefined;
}

/** `name-host-port`: stable across restarts of the same pod or unit, unique on a host. */
export function defaultInstanceId(service: string, host: string, port: number): string {
  const safeHost = host.replace(/[^A-Za-z0-9_.-]/g, '-');
  return `${service}-${safeHost}-${port}`;
}
