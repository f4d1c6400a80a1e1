import { performance } from 'node:perf_hooks';
import { CallHandler, ExecutionContext, Inject, Injectable, Logger, NestInterceptor, OnApplicationShutdown } from '@nestjs/common';
import { finalize, Observable, tap } from 'rxjs';
import type { BoundedHistogram, HistogramSeries } from './bounded.histogram';
import { acquireDurationHistogram } from './http/http-metrics';
import { METRICS_OPTIONS, MetricName } from './metrics.constants';
import type { ResolvedMetricsOptions } from './metrics.options';
import { releaseMetric } from './shared-metric';

// Metadata keys of @nestjs/microservices, read by name so that this package does not depend on it.
const PATTERN_METADATA = 'microservices:pattern';
const TRANSPORT_METADATA = 'microservices:transport';
/** `Transport` enum of @nestjs/microservices. */
const TRANSPORTS: Readonly<Record<number, string>> = { 0: 'tcp', 1: 'redis', 2: 'nats', 3: 'mqtt', 4: 'grpc', 5: 'rmq', 6: 'kafka' };
/** gRPC status codes (grpc/doc/statuscodes.md). */
const GRPC_CODES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
];

interface HandlerLabels {
  readonly transport: string;
  readonly method: string;
  /** Series by result code, so that a call costs one lookup in a map of a handful of entries. */
  readonly series: Map<string, HistogramSeries>;
}

/**
 * `rpc_server_duration_seconds` for Nest microservice handlers (gRPC, TCP, NATS, ...), kept apart
 * from the HTTP histogram. Apply it to the microservices only, so that HTTP requests never pay for
 * an interceptor: `connectMicroserviceWithMetrics(app, options)` in a hybrid application,
 * `microservice.useGlobalInterceptors(microservice.get(RpcMetricsInterceptor))` before `listen()`
 * in a standalone one, or `@UseInterceptors(RpcMetricsInterceptor)` on RPC handlers. Outside an
 * RPC context it passes the call through untouched.
 */
@Injectable()
export class RpcMetricsInterceptor implements NestInterceptor, OnApplicationShutdown {
  private readonly logger = new Logger('Metrics');
  private histogram: BoundedHistogram | undefined;
  private readonly handlers = new WeakMap<object, HandlerLabels>();

  constructor(@Inject(METRICS_OPTIONS) private readonly options: ResolvedMetricsOptions) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() !== 'rpc') return next.handle();
    const labels = this.labelsOf(context);
    const startedAt = performance.now();
    let code: string | undefined;
    return next.handle().pipe(
      tap({
        complete: () => (code = 'OK'),
        error: (error: unknown) => (code = errorCode(error, labels.transport)),
      }),
      // A call that neither completes nor fails was unsubscribed: the client went away.
      finalize(() => this.seriesOf(labels, code ?? 'CANCELLED').observe((performance.now() - startedAt) / 1000)),
    );
  }

  onApplicationShutdown(): void {
    if (this.histogram) releaseMetric(this.options.registry, this.histogram, this);
    this.histogram = undefined;
  }

  private seriesOf(labels: HandlerLabels, code: string): HistogramSeries {
    let series = labels.series.get(code);
    if (!series) {
      // Registered on first use: an application without microservices shows no RPC metric.
      this.histogram ??= acquireDurationHistogram(this.options, MetricName.RPC_SERVER_DURATION_SECONDS, this, this.logger);
      series = this.histogram.seriesFor([labels.transport, labels.method, code]);
      labels.series.set(code, series);
    }
    return series;
  }

  private labelsOf(context: ExecutionContext): HandlerLabels {
    const handler = context.getHandler();
    let labels = this.handlers.get(handler);
    if (!labels) {
      labels = { ...describeHandler(handler, context), series: new Map() };
      this.handlers.set(handler, labels);
    }
    return labels;
  }
}

function describeHandler(handler: object, context: ExecutionContext): { transport: string; method: string } {
  const patterns = Reflect.getMetadata(PATTERN_METADATA, handler) as unknown[] | undefined;
  const pattern = Array.isArray(patterns) ? patterns[0] : patterns;
  if (isGrpcPattern(pattern)) return { transport: 'grpc', method: `${pattern.service}/${pattern.rpc}` };
  const declared = Reflect.getMetadata(TRANSPORT_METADATA, handler) as unknown;
  let transport = typeof declared === 'number' ? TRANSPORTS[declared] : typeof declared === 'string' ? declared : undefined;
  // Otherwise from the context class the transport hands the handler (TcpContext, NatsContext, ...).
  const ctxName = (context.switchToRpc().getContext() as { constructor?: { name?: string } } | undefined)?.constructor?.name;
  transport ??= ctxName?.endsWith('Context') ? ctxName.slice(0, -'Context'.length).toLowerCase() : 'unknown';
  return { transport, method: pattern === undefined ? context.getClass().name + '.' + context.getHandler().name : patternLabel(pattern) };
}

function isGrpcPattern(pattern: unknown): pattern is { service: string; rpc: string } {
  const p = pattern as { service?: unknown; rpc?: unknown } | null | undefined;
  return typeof p === 'object' && p !== null && typeof p.service === 'string' && typeof p.rpc === 'string';
}

function patternLabel(pattern: unknown): string {
  return typeof pattern === 'string' ? pattern : JSON.stringify(pattern);
}

function errorCode(error: unknown, transport: string): string {
  if (transport !== 'grpc') return 'ERROR';
  // RpcException carries `{ code, message }` in getError(); gRPC's own errors carry `code`.
  const source = typeof (error as { getError?: unknown })?.getError === 'function' ? (error as { getError(): unknown }).getError() : error;
  const code = (source as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'number' && GRPC_CODES[code] ? GRPC_CODES[code] : 'UNKNOWN';
}
