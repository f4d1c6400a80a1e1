/** An etcd cluster and how to reach it: what the registry's etcd driver and the config's etcd source share. */
export interface EtcdConnection {
  /** etcd client URLs (`http://` or `https://`). */
  readonly endpoints: readonly string[];
  /** etcd user, when authentication is enabled. */
  readonly auth?: { readonly username: string; readonly password: string };
  /**
   * PEM material: the CA that signed etcd's certificate, and a client certificate for mutual TLS.
   * `https://` endpoints use TLS without it too, trusting the system's CAs.
   */
  readonly tls?: { readonly ca?: string | Buffer; readonly cert?: string | Buffer; readonly key?: string | Buffer };
  /** Dial timeout, deadline of each unary call, and how long a keep-alive ping may go unanswered. */
  readonly operationTimeoutMs: number;
  /** The caller's longest retry delay: gRPC's own reconnection never waits longer than that (or 1 s). */
  readonly maxRetryDelayMs: number;
}

/**
 * The options of `new Etcd3(...)` (npm `etcd3` v1) for a caller that retries with its own backoff
 * and bounds each call itself. The etcd3 package stays the caller's (optional) dependency: this
 * builds a plain object only.
 */
export function etcdClientOptions(connection: EtcdConnection): Record<string, unknown> {
  const { tls, auth, operationTimeoutMs: timeoutMs } = connection;
  const pem = tls && (tls.ca ?? tls.cert ?? tls.key) !== undefined;
  return {
    hosts: [...connection.endpoints],
    ...(pem ? { credentials: { rootCertificate: toBuffer(tls.ca), privateKey: toBuffer(tls.key), certChain: toBuffer(tls.cert) } } : {}),
    ...(auth ? { auth: { username: auth.username, password: auth.password } } : {}),
    dialTimeout: timeoutMs,
    // One attempt per call: etcd3's default retries (3, then a circuit breaker open for 5 s) would
    // stack a second retry schedule under the caller's backoff and delay the catch-up once etcd is
    // back. Its own watch reconnection waits a short fixed time: the caller's backoff is the one that grows.
    faultHandling: { host: () => runOnce, global: runOnce, watchBackoff: constantBackoff(200) },
    grpcOptions: {
      // Reconnect soon after etcd comes back rather than after gRPC's default backoff (up to 120 s).
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': Math.max(1000, connection.maxRetryDelayMs),
      // Pings on open streams find a half-open connection (a frozen etcd, a dropped NAT entry) that
      // would otherwise leave a watch silent forever. etcd refuses pings more often than every 5 s.
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': Math.max(1000, timeoutMs),
    },
    // Unary calls get a deadline; streams (watch, keep-alive) must not, or they would end with it.
    defaultCallOptions: (context: { isStream: boolean }) => (context.isStream ? {} : { deadline: new Date(Date.now() + timeoutMs) }),
  };
}

/** etcd3's fault-handling policy (cockatiel's interface), run once. */
const runOnce = {
  execute: <T>(fn: (context: { signal: AbortSignal; attempt: number }) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T> =>
    Promise.resolve().then(() => fn({ signal: signal ?? new AbortController().signal, attempt: 0 })),
  onSuccess: () => ({ dispose: () => undefined }),
  onFailure: () => ({ dispose: () => undefined }),
};

/** etcd3's backoff interface, always the same delay. */
function constantBackoff(durationMs: number) {
  const backoff = { duration: durationMs, next: () => backoff };
  return backoff;
}

function toBuffer(value: string | Buffer | undefined): Buffer | undefined {
  if (value === undefined) return undefined;
  return Buffer.isBuffer(value) ? value : Buffer.from(value);
}
