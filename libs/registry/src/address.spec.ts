import { detectAdvertisedAddress, defaultInstanceId } from './address';

describe('detectAdvertisedAddress', () => {
  it('takes the first non-internal IPv4 address, skipping loopback, IPv6 and link-local', () => {
    const info = (address: string, family: 'IPv4' | 'IPv6', internal = false) =>
      ({ address, family, internal, netmask: '', mac: '', cidr: null }) as never;
    expect(
      detectAdvertisedAddress({
        lo: [info('127.0.0.1', 'IPv4', true)],
        eth0: [info('fe80::1', 'IPv6'), info('169.254.10.1', 'IPv4'), info('10.1.2.3', 'IPv4')],
        eth1: [info('192.168.1.2', 'IPv4')],
      }),
    ).toBe('10.1.2.3');
    expect(detectAdvertisedAddress({ lo: [info('127.0.0.1', 'IPv4', true)] })).toBeUndefined();
  });

  it('builds name-host-port instance ids', () => {
    expect(defaultInstanceId('orders', 'pod/7', 8080)).toBe('orders-pod-7-8080');
  });
});
