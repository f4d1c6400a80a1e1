import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Controller, createParamDecorator, ExecutionContext, Get, Global, Inject, Injectable, Module, Param } from '@nestjs/common';
import type { INestMicroservice, Provider } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Ctx, GrpcMethod, GrpcStreamCall, GrpcStreamMethod, Payload, RpcException, Transport } from '@nestjs/microservices';
import type { GrpcOptions } from '@nestjs/microservices';
import * as grpc from '@grpc/grpc-js';
import { METRICS_PUBLISHER } from '@nest-rollout/lifecycle';
import type { MetricsPublisher } from '@nest-rollout/lifecycle';
import { map, Observable, of, toArray } from 'rxjs';
import { CANARY_GRPC_FORWARDER } from '../canary.constants';
import { CanaryContext } from '../canary.context';
import { Canary, CanaryDecision } from '../canary.decorator';
import { CanaryModule } from '../canary.module';
import type { CanaryModuleOptions } from '../canary.options';
import type { CanaryGrpcForwarder } from './canary-grpc.types';
import type { GrpcPackageDefinition } from './grpc-canary-forwarder.options';

export const QUOTES_PROTO = join(__dirname, 'fixtures/quotes.proto');
/**
 * The @grpc/proto-loader options of the server and of every client and forwarder in the specs. The
 * specs load the definition themselves: this helper ships in the package's source tree, where every
 * import must be a declared dependency, and @grpc/proto-loader is the application's.
 */
export const LOADER_OPTIONS = { keepCase: false, defaults: true };
const PRICING = 'TEST:PRICING';
/** The metadata a Quote echoes. */
const ECHOED = ['x-canary', 'x-canary-hop', 'baggage', 'x-env', 'x-forwarded-for', 'cookie'];

export interface Quote {
  id: string;
  pricing: string;
  variant: string;
  reason: string;
  servedLocally: string;
  contextVariant: string;
  metadata: Record<string, string>;
  deadlineMs: number;
}

/** Handler runs per method on one instance: a forwarded call must not run the stable's handler. */
@Injectable()
export class HandlerRuns {
  readonly counts: Record<string, number> = {};
  count(method: string): void {
    this.counts[method] = (this.counts[method] ?? 0) + 1;
  }
}

/** The gRPC server call, Nest's third handler argument, which no built-in decorator gives. */
const GrpcCall = createParamDecorator((_: unknown, ctx: ExecutionContext) => ctx.getArgByIndex<grpc.ServerUnaryCall<unknown, unknown>>(2));

/** One controller for every spec: `@Canary()` controller-wide, an HTTP route and gRPC handlers of each kind. */
@Controller('quotes')
@Canary()
export class QuotesController {
  constructor(
    @Inject(PRICING) private readonly pricing: string,
    private readonly context: CanaryContext,
    private readonly runs: HandlerRuns,
  ) {}

  @Get(':id')
  http(@Param('id') id: string, @CanaryDecision() decision: CanaryDecision | undefined): Quote {
    this.runs.count('http');
    return this.quote(id, decision);
  }

  @GrpcMethod('Quotes', 'Get')
  get(
    @Payload() request: { id: string },
    @Ctx() metadata: grpc.Metadata,
    @GrpcCall() call: grpc.ServerUnaryCall<unknown, unknown>,
    @CanaryDecision() decision: CanaryDecision | undefined,
  ): Quote {
    this.runs.count('Get');
    // Response metadata, which a forwarding stable instance passes back.
    call.sendMetadata(metadataOf({ 'x-served-by': this.pricing }));
    const deadline = call.getDeadline();
    const deadlineMs = deadline instanceof Date ? deadline.getTime() : Number.isFinite(deadline) ? deadline : 0;
    return { ...this.quote(request.id, decision, metadata), deadlineMs };
  }

  @GrpcMethod('Quotes', 'Fail')
  fail(@Payload() request: { id: string }): never {
    this.runs.count('Fail');
    throw new RpcException({ code: grpc.status.NOT_FOUND, message: `no quote ${request.id} on ${this.pricing}` });
  }

  @GrpcMethod('Quotes', 'Decide')
  @Canary({ forward: false })
  decide(
    @Payload() request: { id: string },
    @Ctx() metadata: grpc.Metadata,
    @CanaryDecision() decision: CanaryDecision | undefined,
  ): Quote {
    this.runs.count('Decide');
    return this.quote(request.id, decision, metadata);
  }

  @GrpcMethod('Quotes', 'Hold')
  hold(@GrpcCall() call: grpc.ServerUnaryCall<unknown, unknown>): Observable<Quote> {
    this.runs.count('Hold');
    call.on('cancelled', () => this.runs.count('Hold cancelled'));
    return new Observable<Quote>(() => undefined);
  }

  @GrpcMethod('Quotes', 'Watch')
  watch(
    @Payload() request: { id: string },
    @Ctx() metadata: grpc.Metadata,
    @CanaryDecision() decision: CanaryDecision | undefined,
  ): Observable<Quote> {
    this.runs.count('Watch');
    return of(this.quote(request.id, decision, metadata), this.quote(`${request.id}+1`, decision, metadata));
  }

  @GrpcStreamMethod('Quotes', 'Collect')
  collect(
    @Payload() requests: Observable<{ id: string }>,
    @Ctx() metadata: grpc.Metadata,
    @CanaryDecision() decision: CanaryDecision | undefined,
  ): Observable<Quote> {
    this.runs.count('Collect');
    // An Observable, not a Promise awaiting the requests: Nest lets the requests flow once the handler returns.
    const quote = this.quote('', decision, metadata);
    return requests.pipe(
      toArray(),
      map((ids) => ({ ...quote, id: ids.map((r) => r.id).join(',') })),
    );
  }

  @GrpcStreamCall('Quotes', 'Relay')
  relay(@Payload() call: grpc.ServerDuplexStream<{ id: string }, Quote>, @CanaryDecision() decision: CanaryDecision | undefined): void {
    this.runs.count('Relay');
    // The pass-through form: Nest hands over the call itself, metadata included.
    const quote = this.quote('', decision, call.metadata);
    call.on('data', (request: { id: string }) => call.write({ ...quote, id: request.id }));
    call.on('end', () => call.end());
  }

  private quote(id: string, decision: CanaryDecision | undefined, metadata?: grpc.Metadata): Quote {
    const echoed: Record<string, string> = {};
    for (const key of ECHOED) {
      const values = metadata?.get(key) ?? [];
      if (values.length > 0) echoed[key] = values.map(String).join(' | ');
    }
    return {
      id,
      pricing: this.pricing,
      variant: decision?.variant ?? '',
      reason: decision?.reason ?? '',
      servedLocally: decision?.servedLocally ?? '',
      contextVariant: this.context.current()?.variant ?? '',
      metadata: echoed,
      deadlineMs: 0,
    };
  }
}

export interface Counted {
  name: string;
  labels: Readonly<Record<string, string>>;
}

export interface InstanceSetup {
  /** v1 on stable, v2 on canary. */
  pricing: 'v1' | 'v2';
  options?: CanaryModuleOptions;
  /** Built once the module starts, so that a forwarder can name an instance started before. */
  grpcForwarder?: () => CanaryGrpcForwarder;
}

/** The providers every instance has (as MetricsModule or a forwarder module would give them), and its module. */
export function instanceModule(setup: InstanceSetup, counted: Counted[]) {
  const metrics: MetricsPublisher = {
    increment: (name, labels) => counted.push({ name, labels }),
    set: () => undefined,
    observe: () => () => undefined,
  };
  const providers: Provider[] = [
    { provide: METRICS_PUBLISHER, useValue: metrics },
    { provide: PRICING, useValue: setup.pricing },
    HandlerRuns,
  ];
  @Global()
  @Module({ providers, exports: providers.map((p) => (typeof p === 'function' ? p : p.provide)) })
  class Providers {}
  // The forwarder in a module of its own that exports nothing: the canary finds it there all the same.
  @Module({ providers: setup.grpcForwarder ? [{ provide: CANARY_GRPC_FORWARDER, useFactory: setup.grpcForwarder }] : [] })
  class ForwardingModule {}
  @Module({ imports: [Providers, ForwardingModule, CanaryModule.forRoot(setup.options ?? {})], controllers: [QuotesController] })
  class AppModule {}
  return AppModule;
}

export function grpcServerOptions(port: number): GrpcOptions {
  return {
    transport: Transport.GRPC,
    options: { package: 'quotes', protoPath: QUOTES_PROTO, url: `127.0.0.1:${port}`, loader: LOADER_OPTIONS },
  };
}

export interface GrpcInstance {
  readonly app: INestMicroservice;
  readonly address: string;
  readonly port: number;
  readonly counted: Counted[];
  readonly runs: HandlerRuns;
  close(): Promise<void>;
}

/** A microservice-only application (NestFactory.createMicroservice) serving Quotes on a loopback port (a free one by default). */
export async function startGrpcInstance(setup: InstanceSetup, port?: number): Promise<GrpcInstance> {
  port ??= await freePort();
  const counted: Counted[] = [];
  const app = await NestFactory.createMicroservice(instanceModule(setup, counted), {
    ...grpcServerOptions(port),
    logger: false,
    abortOnError: false,
  });
  await app.listen();
  return { app, port, address: `127.0.0.1:${port}`, counted, runs: app.get(HandlerRuns), close: () => app.close() };
}

export type QuotesClient = grpc.Client & Record<string, (...args: unknown[]) => grpc.ClientUnaryCall & grpc.ClientReadableStream<Quote>>;

export function quotesClient(address: string, definition: GrpcPackageDefinition): QuotesClient {
  const loaded = grpc.loadPackageDefinition(definition as Parameters<typeof grpc.loadPackageDefinition>[0]) as unknown as {
    quotes: { Quotes: new (address: string, credentials: grpc.ChannelCredentials) => QuotesClient };
  };
  return new loaded.quotes.Quotes(address, grpc.credentials.createInsecure());
}

export function metadataOf(entries: Record<string, string | Buffer> = {}): grpc.Metadata {
  const metadata = new grpc.Metadata();
  for (const [key, value] of Object.entries(entries)) metadata.add(key, value);
  return metadata;
}

export interface UnaryAnswer {
  reply?: Quote;
  error?: grpc.ServiceError;
  /** The response's initial metadata. */
  headers?: grpc.Metadata;
}

/** One unary call; never rejects: the error is part of the answer. `started` receives the call, to cancel it. */
export function unary(
  client: QuotesClient,
  method: 'Get' | 'Fail' | 'Decide' | 'Hold',
  id: string,
  metadata: Record<string, string | Buffer> = {},
  options: grpc.CallOptions = {},
  started?: (call: grpc.ClientUnaryCall) => void,
): Promise<UnaryAnswer> {
  return new Promise((resolve) => {
    let headers: grpc.Metadata | undefined;
    const call = client[method]({ id }, metadataOf(metadata), options, (error: grpc.ServiceError | null, reply?: Quote) =>
      resolve(error ? { error, headers } : { reply, headers }),
    );
    call.on('metadata', (received: grpc.Metadata) => (headers = received));
    started?.(call);
  });
}

export function serverStream(client: QuotesClient, id: string, metadata: Record<string, string> = {}): Promise<Quote[]> {
  return new Promise((resolve, reject) => {
    const quotes: Quote[] = [];
    const call = client.Watch({ id }, metadataOf(metadata));
    call.on('data', (quote: Quote) => quotes.push(quote));
    call.on('error', reject);
    call.on('end', () => resolve(quotes));
  });
}

export function clientStream(client: QuotesClient, ids: string[], metadata: Record<string, string> = {}): Promise<Quote> {
  return new Promise((resolve, reject) => {
    const call = client.Collect(metadataOf(metadata), (error: grpc.ServiceError | null, reply?: Quote) =>
      error ? reject(error) : resolve(reply as Quote),
    ) as unknown as grpc.ClientWritableStream<{ id: string }>;
    for (const id of ids) call.write({ id });
    call.end();
  });
}

/** A loopback port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Decisions counted under `canary_decisions_total`, as `route variant reason`. */
export function decisions(counted: readonly Counted[]): string[] {
  return counted.filter((c) => c.name === 'canary_decisions_total').map((c) => `${c.labels.route} ${c.labels.variant} ${c.labels.reason}`);
}

/** Resolves once `condition` holds, checking every 10 ms; fails after `timeoutMs`. */
export async function until(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms: ${condition.toString()}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export function bidiStream(client: QuotesClient, ids: string[], metadata: Record<string, string> = {}): Promise<Quote[]> {
  return new Promise((resolve, reject) => {
    const quotes: Quote[] = [];
    const call = client.Relay(metadataOf(metadata)) as unknown as grpc.ClientDuplexStream<{ id: string }, Quote>;
    call.on('data', (quote: Quote) => quotes.push(quote));
    call.on('error', reject);
    call.on('end', () => resolve(quotes));
    for (const id of ids) call.write({ id });
    call.end();
  });
}
