import { detectAdvertisedAddress, defaultInstanceId } from './address';
import { backoffDelayMs } from './backoff';

const policy = { initialDelayMs: 500, maxDelayMs: 30_000, multiplier: 2, jitter: 0.5 };

describe('backoffDelayMs', () => {
  it('doubles from the initial delay up to the cap', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoffDelayMs(policy, n, () => 0))).toEqual([
      500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000,
    ]);
  });

  it('takes up to the jitter share off each delay, so a fleet does not retry in lockstep', () => {
    expect(backoffDelayMs(policy, 3, () => 0.999999)).toBe(1000);
    expect(backoffDelayMs(policy, 3, () => 0.5)).toBe(1500);
    expect(backoffDelayMs({ ...policy, jitter: 0 }, 3, () => 0.9)).toBe(2000);
  });
});

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
