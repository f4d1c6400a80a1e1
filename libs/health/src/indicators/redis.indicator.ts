import { untilAborted } from '@nest-rollout/lifecycle';
import type { HealthCheckDefinition } from '../health.check';
import { HealthFailureKind } from '../health.constants';
import { HealthCheckError } from '../health.errors';
import { ClientRef, CheckOptions, commonFields, resolveClient } from './indicator.utils';

/**
 * What `redisCheck` needs of a client: `ping()`, and the connection state where the client has one
 * (`status` on ioredis, `isReady` on node-redis).
 */
export interface RedisClientLike {
  ping(): Promise<unknown>;
  readonly status?: string;
  readonly isReady?: boolean;
}

export interface RedisCheckOptions extends CheckOptions {
  /** The application's client (ioredis or node-redis), or the token of its provider. */
  readonly client: ClientRef<RedisClientLike>;
}

/**
 * Redis through the application's own client: `PING` on its existing connection. A client that is
 * not connected is reported at once instead of queueing a PING behind the reconnect — and no new
 * connection is ever made (terminus users leaked one per probe with a client built in the check).
 */
export function redisCheck(name: string, options: RedisCheckOptions): HealthCheckDefinition {
  return {
    name,
    ...commonFields(options, 'redis'),
    run: async (context) => {
      const client = resolveClient(options.client, isRedisClient, context);
      if (typeof client.status === 'string' && client.status !== 'ready') {
        throw new HealthCheckError(HealthFailureKind.NOT_CONNECTED, `client is ${client.status}`);
      }
      if (client.isReady === false) throw new HealthCheckError(HealthFailureKind.NOT_CONNECTED, 'client is not ready');
      await untilAborted(client.ping(), context.signal);
    },
  };
}

function isRedisClient(value: unknown): value is RedisClientLike {
  return typeof value === 'object' && value !== null && typeof (value as RedisClientLike).ping === 'function';
}
