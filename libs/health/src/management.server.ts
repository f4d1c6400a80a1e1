import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { LifecycleService } from '@nest-rollout/lifecycle';
import { HEALTH_OPTIONS, HEALTH_PATH, HealthEvent } from './health.constants';
import { HealthError, ManagementServerError } from './health.errors';
import { HealthProbeName, HealthProbes } from './health.probes';
import { managementRouteProblem, ManagementRoute, ResolvedHealthOptions } from './health.options';

const PROBES: readonly HealthProbeName[] = ['live', 'ready', 'startup'];
const NO_CACHE = 'no-cache, no-store, must-revalidate';

/**
 * The management port: the probes (and whatever other modules add, e.g. `/metrics`) on a server of
 * their own, so the public ingress exposes neither. A plain Node server rather than a second Nest
 * application: it answers the same under the Express and the Fastify adapter, costs no routing, and
 * stays up through the drain until the very end of the shutdown, after the main server has closed.
 */
@Injectable()
export class ManagementServer implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('Health');
  private readonly routes = new Map<string, ManagementRoute['handle']>();
  private server: Server | undefined;

  constructor(
    @Inject(HEALTH_OPTIONS) private readonly options: ResolvedHealthOptions,
    @Inject(HEALTH_PATH) private readonly path: string,
    private readonly probes: HealthProbes,
    private readonly lifecycle: LifecycleService,
  ) {
    for (const probe of PROBES) {
      this.routes.set(`GET /${path}/${probe}`, (_req, res) => this.serveProbe(probe, res));
    }
    for (const route of options.management?.routes ?? []) this.addRoute(route);
  }

  /** True when the options ask for a management server. */
  get enabled(): boolean {
    return this.options.management !== undefined;
  }

  /** Where the server listens, once it does (useful with `port: 0`). */
  address(): AddressInfo | undefined {
    const address = this.server?.address();
    return address && typeof address === 'object' ? address : undefined;
  }

  /** Adds a route, e.g. `/metrics`; call it before or after the server starts. */
  addRoute(route: ManagementRoute): void {
    const problem = managementRouteProblem(route);
    if (problem) throw new HealthError('HEALTH_INVALID_MANAGEMENT_ROUTE', `management route ${JSON.stringify(route?.path)}: ${problem}`);
    const key = `${route.method ?? 'GET'} ${route.path}`;
    if (this.routes.has(key)) throw new HealthError('HEALTH_DUPLICATE_MANAGEMENT_ROUTE', `management route ${key} is already served`);
    this.routes.set(key, route.handle.bind(route));
  }

  async onApplicationBootstrap(): Promise<void> {
    const management = this.options.management;
    if (!management || this.server) return;
    // Listening at bootstrap, before the main server, so that a startup probe can reach the
    // instance as soon as it exists.
    const server = createServer((req, res) => void this.handle(req, res));
    server.keepAliveTimeout = 5_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) =>
        reject(
          new ManagementServerError(
            `management server cannot listen on ${management.host}:${management.port} (${error.code ?? error.message}); ` +
              'choose a free port with management.port (or PORT_MANAGEMENT), or 0 for any',
          ),
        ),
      );
      server.listen(management.port, management.host, () => resolve());
    });
    this.server = server;
    const address = this.address();
    this.logger.log({
      event: HealthEvent.MANAGEMENT_LISTENING,
      instance_id: this.lifecycle.identity.instanceId,
      host: address?.address ?? management.host,
      port: address?.port ?? management.port,
      routes: [...this.routes.keys()],
    });
  }

  async onApplicationShutdown(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    // Probes are short; whatever is still open (a keep-alive socket of the kubelet) goes now.
    server.closeAllConnections();
    await closed;
    this.logger.log({ event: HealthEvent.MANAGEMENT_CLOSED, instance_id: this.lifecycle.identity.instanceId });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method === 'HEAD' ? 'GET' : (req.method ?? 'GET');
    const path = (req.url ?? '/').split('?')[0].replace(/\/+$/, '') || '/';
    const handler = this.routes.get(`${method} ${path}`);
    try {
      if (!handler) {
        sendJson(res, 404, { message: `Cannot ${req.method} ${path}`, error: 'Not Found', statusCode: 404 });
        return;
      }
      await handler(req, res);
    } catch (error) {
      this.logger.error({
        event: HealthEvent.MANAGEMENT_ROUTE_FAILED,
        instance_id: this.lifecycle.identity.instanceId,
        route: `${method} ${path}`,
        error: error instanceof Error ? error.message : String(error),
      });
      if (!res.headersSent) sendJson(res, 500, { message: 'Internal server error', statusCode: 500 });
      else res.end();
    }
  }

  private async serveProbe(probe: HealthProbeName, res: ServerResponse): Promise<void> {
    const { statusCode, body } = await this.probes.respond(probe);
    sendJson(res, statusCode, body);
  }
}

function sendJson(res: ServerResponse, statusCode: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(statusCode, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': NO_CACHE,
  });
  res.end(res.req?.method === 'HEAD' ? undefined : text);
}
