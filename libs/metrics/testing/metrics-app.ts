import { request } from 'node:http';
import type { DynamicModule, INestApplication, LoggerService, ModuleMetadata, Type } from '@nestjs/common';
import { VersioningType } from '@nestjs/common';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { attachLifecycle, LifecycleModule, LifecycleModuleOptions, LifecycleService, LifecycleState } from '@nest-rollout/lifecycle';
import { Registry } from 'prom-client';
import { MetricsModule } from '../src/metrics.module';
import type { MetricsModuleExtras } from '../src/metrics.module-definition';
import type { MetricsModuleOptions } from '../src/metrics.options';

/**
 * The shared bootstrap of the HTTP-facing specs: MetricsModule in a real application on the given
 * adapter, listening on a loopback port, with the lifecycle attached and READY. Outside src/: it
 * needs the platform adapters and @nestjs/testing, which the package neither ships nor depends on.
 */
export type Adapter = 'express' | 'fastify';
export const ADAPTERS: readonly Adapter[] = ['express', 'fastify'];

export interface LogRecord {
  readonly level: 'log' | 'warn' | 'error' | 'debug' | 'verbose' | 'fatal';
  readonly message: unknown;
}

export interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
}

export interface MetricsAppOptions {
  /** MetricsModule options; `registry` defaults to a fresh registry per app, so specs do not see each other. */
  readonly metrics?: MetricsModuleOptions;
  readonly extras?: MetricsModuleExtras;
  /** Merged over `{ minReadyDelayMs: 0, drainDelayMs: 0, exitOnShutdown: false }`. */
  readonly lifecycle?: LifecycleModuleOptions;
  /** Use `MetricsModule.forRootAsync` with this module instead of `forRoot`. */
  readonly metricsModule?: DynamicModule;
  readonly controllers?: Type<unknown>[];
  readonly imports?: ModuleMetadata['imports'];
  readonly providers?: ModuleMetadata['providers'];
  readonly globalPrefix?: string;
  /** Enables URI versioning (`/v1/...`), with this default version when given. */
  readonly uriVersioning?: boolean | { defaultVersion: string };
  /** Runs after the lifecycle is attached and before the application listens (connect microservices here). */
  readonly beforeListen?: (app: INestApplication) => Promise<void> | void;
  /** Applied to the testing module before compiling it. */
  readonly override?: (builder: ReturnType<typeof Test.createTestingModule>) => ReturnType<typeof Test.createTestingModule>;
}

export interface MetricsTestApp {
  readonly app: INestApplication;
  readonly adapter: Adapter;
  /** http://127.0.0.1:<port> */
  readonly url: string;
  readonly logs: LogRecord[];
  request(method: string, path: string, body?: unknown): Promise<Answer>;
  /** GET of the scrape endpoint's path (default /metrics). */
  scrape(path?: string): Promise<Answer>;
  /** Log messages of one event name. */
  events(event: string): Record<string, unknown>[];
  close(): Promise<void>;
}

export async function bootstrapMetricsApp(adapter: Adapter, options: MetricsAppOptions = {}): Promise<MetricsTestApp> {
  const logs: LogRecord[] = [];
  const record =
    (level: LogRecord['level']) =>
    (message: unknown): void => {
      logs.push({ level, message });
    };
  const logger: LoggerService = {
    log: record('log'),
    warn: record('warn'),
    error: record('error'),
    debug: record('debug'),
    verbose: record('verbose'),
    fatal: record('fatal'),
  };
  const metricsModule = options.metricsModule ?? MetricsModule.forRoot({ registry: new Registry(), ...options.metrics, ...options.extras });
  let builder = Test.createTestingModule({
    imports: [
      LifecycleModule.forRoot({ minReadyDelayMs: 0, drainDelayMs: 0, exitOnShutdown: false, ...options.lifecycle }),
      metricsModule,
      ...(options.imports ?? []),
    ],
    controllers: options.controllers ?? [],
    providers: options.providers ?? [],
  });
  if (options.override) builder = options.override(builder);
  const moduleRef = await builder.compile();
  const app = moduleRef.createNestApplication(adapter === 'fastify' ? new FastifyAdapter() : new ExpressAdapter(), { logger });
  if (options.globalPrefix) app.setGlobalPrefix(options.globalPrefix);
  if (options.uriVersioning) {
    const defaultVersion = typeof options.uriVersioning === 'object' ? options.uriVersioning.defaultVersion : undefined;
    app.enableVersioning({ type: VersioningType.URI, defaultVersion });
  }
  attachLifecycle(app);
  await options.beforeListen?.(app);
  await app.listen(0, '127.0.0.1');
  const lifecycle = app.get(LifecycleService);
  const deadline = Date.now() + 5000;
  while (lifecycle.state !== LifecycleState.READY) {
    if (Date.now() > deadline) throw new Error(`lifecycle still ${lifecycle.state} 5 s after listen`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  const url = `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}`;
  return {
    app,
    adapter,
    url,
    logs,
    request: (method, path, body) => httpRequest(method, `${url}${path}`, body),
    scrape: (path = '/metrics') => httpRequest('GET', `${url}${path}`),
    events: (event) =>
      logs
        .map((l) => l.message)
        .filter((m): m is Record<string, unknown> => typeof m === 'object' && m !== null && (m as { event?: unknown }).event === event),
    close: () => app.close(),
  };
}

/** One request on a fresh connection. */
export function httpRequest(method: string, url: string, body?: unknown): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      url,
      {
        method,
        agent: false,
        headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
      },
    );
    req.setTimeout(5000, () => req.destroy(new Error(`${method} ${url}: no answer within 5000 ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** One sample of the exposition text. */
export interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

/** Parses the samples of a Prometheus text exposition (enough of the format for these specs). */
export function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`unparsable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2];
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

/** Samples of one name whose labels include `labels`. */
export function samplesOf(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): Sample[] {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

/** The value of the one sample of `name` with `labels`, or undefined. */
export function valueOf(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = samplesOf(samples, name, labels);
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`);
  return found[0]?.value;
}
