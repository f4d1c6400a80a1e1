import { etcdClientOptions } from './etcd-client-options';

interface BuiltOptions {
  hosts: string[];
  credentials?: { rootCertificate?: Buffer; privateKey?: Buffer; certChain?: Buffer };
  auth?: { username: string; password: string };
  dialTimeout: number;
  faultHandling: {
    host: (host: string) => { execute: (fn: () => number) => Promise<number> };
    global: { execute: (fn: () => number) => Promise<number> };
    watchBackoff: { duration: number; next: () => { duration: number } };
  };
  grpcOptions: Record<string, number>;
  defaultCallOptions: (context: { isStream: boolean }) => { deadline?: Date };
}

const built = (connection: Partial<Parameters<typeof etcdClientOptions>[0]> = {}) =>
  etcdClientOptions({
    endpoints: ['http://127.0.0.1:2379'],
    operationTimeoutMs: 3000,
    maxRetryDelayMs: 30_000,
    ...connection,
  }) as unknown as BuiltOptions;

describe('etcdClientOptions', () => {
  it('connects to the endpoints with the user given, and TLS only with PEM material', () => {
    expect(built({ endpoints: ['https://etcd-0:2379', 'https://etcd-1:2379'] })).toMatchObject({
      hosts: ['https://etcd-0:2379', 'https://etcd-1:2379'],
      dialTimeout: 3000,
    });
    expect(built()).not.toHaveProperty('credentials');
    expect(built({ tls: {} })).not.toHaveProperty('credentials');
    expect(built({ auth: { username: 'reader', password: 'secret' } }).auth).toEqual({ username: 'reader', password: 'secret' });
    expect(built({ tls: { ca: 'CA PEM' } }).credentials).toEqual({ rootCertificate: Buffer.from('CA PEM') });
    // Mutual TLS without a CA of its own trusts the system's CAs and still sends the client certificate.
    expect(built({ tls: { cert: Buffer.from('CERT'), key: 'KEY' } }).credentials).toEqual({
      certChain: Buffer.from('CERT'),
      privateKey: Buffer.from('KEY'),
    });
  });

  it("runs each call once under the caller's retries, and reconnects a watch after a short fixed delay", async () => {
    const { faultHandling } = built();
    await expect(faultHandling.global.execute(() => 7)).resolves.toBe(7);
    await expect(faultHandling.host('etcd-0').execute(() => 8)).resolves.toBe(8);
    expect(faultHandling.watchBackoff.duration).toBe(200);
    expect(faultHandling.watchBackoff.next().duration).toBe(200);
  });

  it('sets deadlines on unary calls only, and keeps gRPC reconnection below the longest retry delay', () => {
    const options = built({ maxRetryDelayMs: 5000 });
    expect(options.defaultCallOptions({ isStream: true })).toEqual({});
    expect(options.defaultCallOptions({ isStream: false })).toEqual({ deadline: expect.any(Date) });
    expect(options.grpcOptions).toMatchObject({
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 5000,
      'grpc.keepalive_timeout_ms': 3000,
    });
    expect(built({ maxRetryDelayMs: 400, operationTimeoutMs: 100 }).grpcOptions).toMatchObject({
      'grpc.max_reconnect_backoff_ms': 1000,
      'grpc.keepalive_timeout_ms': 1000,
    });
  });
});
