import type { HealthCheckDefinition } from '../health.check';
import { HealthFailureKind } from '../health.constants';
import { HealthCheckError } from '../health.errors';
import { CheckOptions, commonFields } from './indicator.utils';

export interface HttpCheckOptions extends CheckOptions {
  /** @default 'GET' */
  readonly method?: 'GET' | 'HEAD';
  readonly headers?: Readonly<Record<string, string>>;
  /**
   * Which status codes mean up.
   * @default 2xx and 3xx
   */
  readonly expectStatus?: (statusCode: number) => boolean;
}

/**
 * An HTTP upstream, with Node's `fetch` (its keep-alive pool is shared with the rest of the process,
 * so checks reuse connections). Terminus' HTTP indicator needs `@nestjs/axios`; this one needs nothing.
 * Failure details show the upstream's origin and path, never its credentials or query string;
 * credentials in the URL are sent as basic auth.
 */
export function httpCheck(name: string, url: string | URL, options: HttpCheckOptions = {}): HealthCheckDefinition {
  const target = new URL(url.toString());
  const headers: Record<string, string> = { ...options.headers };
  // fetch() refuses URLs with credentials; they travel as basic auth instead, and never in messages.
  if (target.username || target.password) {
    const credentials = `${decodeURIComponent(target.username)}:${decodeURIComponent(target.password)}`;
    headers.authorization ??= `Basic ${Buffer.from(credentials).toString('base64')}`;
    target.username = '';
    target.password = '';
  }
  const shown = `${target.origin}${target.pathname}`;
  const expect = options.expectStatus ?? ((status: number) => status >= 200 && status < 400);
  return {
    name,
    ...commonFields(options, 'http'),
    run: async ({ signal }) => {
      const response = await fetch(target, { method: options.method ?? 'GET', headers, signal, redirect: 'manual' });
      // The body is not needed; cancelling it hands the socket back to the pool.
      await response.body?.cancel().catch(() => undefined);
      if (!expect(response.status)) throw new HealthCheckError(HealthFailureKind.UNHEALTHY, `${shown} answered HTTP ${response.status}`);
      return { statusCode: response.status };
    },
  };
}
