import { Controller, Get, Logger as NestLogger, Module, type DynamicModule, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { LifecycleModule, LifecycleService, LifecycleState } from '@nest-rollout/lifecycle';
import { Logger } from 'nestjs-pino';
import { filter, firstValueFrom } from 'rxjs';
import { AppLogger } from './app-logger';
import { LOGGING_OPTIONS, LOGGING_PINO_LOGGER } from './logging.constants';
import { LoggingOptionsError } from './logging.errors';
import { LoggingModule } from './logging.module';
import { TraceContext } from './trace-context.service';
import { ADAPTERS, CapturedLines, type AdapterName } from '../testing/logging-test-app';

const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';

@Controller('t')
class HandlerController {
  private readonly logger = new NestLogger('Handler');

  @Get()
  handle(): string {
    this.logger.log({ event: 'test.handler' });
    return 'ok';
  }
}

/** The way an application uses it: the logger first, handed to NestFactory.create and to the module. */
async function createApp(
  adapter: AdapterName,
  logger: AppLogger,
  imports: DynamicModule[] = [LifecycleModule.forRoot({ exitOnShutdown: false, minReadyDelayMs: 0, drainDelayMs: 0 })],
): Promise<INestApplication> {
  @Module({ imports: [LoggingModule.forLogger(logger), ...imports], controllers: [HandlerController] })
  class AppModule {}

  return NestFactory.create(AppModule, adapter === 'fastify' ? new FastifyAdapter() : new ExpressAdapter(), {
    logger,
    bufferLogs: true,
    abortOnError: false,
  });
}

describe('AppLogger', () => {
  it('resolves the same options as LoggingModule.forRoot', () => {
    const logger = new AppLogger({ level: 'debug', service: 'orders', destination: new CapturedLines() });

    expect(logger.options).toMatchObject({ level: 'debug', service: 'orders', trustTraceparent: true });
  });

  it('rejects invalid options, as forRoot does at boot', () => {
    expect(() => new AppLogger({ level: 'loud' })).toThrow(LoggingOptionsError);
  });

  it('writes JSON lines with a trace id before any application exists', () => {
    const logs = new CapturedLines();
    const logger = new AppLogger({ destination: logs });

    logger.error({ event: 'test.config_invalid' }, 'Bootstrap');

    expect(logs.one('test.config_invalid')).toMatchObject({
      level: 50,
      context: 'Bootstrap',
      trace_id: expect.stringMatching(/^[0-9a-f]{32}$/),
    });
  });

  it('makes a global module unless told otherwise', () => {
    const logger = new AppLogger({ destination: new CapturedLines() });

    expect(LoggingModule.forLogger(logger).global).toBe(true);
    expect(LoggingModule.forLogger(logger, { isGlobal: false }).global).toBe(false);
  });
});

describe.each(ADAPTERS)('an application on an AppLogger (%s)', (adapter) => {
  let app: INestApplication | undefined;

  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  it('writes every line as JSON from Nest’s first one, all with the lifecycle’s boot trace id until READY', async () => {
    const logs = new CapturedLines();
    const logger = new AppLogger({ destination: logs });
    app = await createApp(adapter, logger);
    await app.listen(0, '127.0.0.1');
    const lifecycle = app.get(LifecycleService);
    const bootTraceId = lifecycle.traceId;
    await firstValueFrom(lifecycle.state$.pipe(filter((state) => state === LifecycleState.READY)));

    expect(logs.lines[0]).toMatchObject({ context: 'NestFactory', msg: 'Starting Nest application...' });
    const readyAt = logs.lines.findIndex((line) => line.event === 'lifecycle.state_changed' && line.to === LifecycleState.READY);
    const boot = logs.lines.slice(0, readyAt + 1);
    expect(boot.map((line) => line.context)).toEqual(
      expect.arrayContaining(['NestFactory', 'InstanceLoader', 'RoutesResolver', 'NestApplication', 'Lifecycle']),
    );
    expect(new Set(boot.map((line) => line.trace_id))).toEqual(new Set([bootTraceId]));
  });

  it('shares the logger’s pino logger, options and trace context with the application, and traces requests', async () => {
    const logs = new CapturedLines();
    const logger = new AppLogger({ destination: logs });
    app = await createApp(adapter, logger);
    await app.listen(0, '127.0.0.1');
    const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');

    expect(app.get(Logger)).toBe(logger);
    expect(app.get(LOGGING_PINO_LOGGER)).toBe(logger.pino);
    expect(app.get(LOGGING_OPTIONS)).toBe(logger.options);
    expect(app.get(TraceContext).traceId()).toBe(app.get(LifecycleService).traceId);
    const res = await fetch(`${url}/t`, { headers: { traceparent: `00-${TRACE_ID}-b7ad6b7169203331-01` } });
    expect(res.status).toBe(200);
    expect(logs.one('test.handler')).toMatchObject({ context: 'Handler', trace_id: TRACE_ID });
  });

  it('keeps a boot trace id of its own without LifecycleModule, the same before the application and in it', async () => {
    const logs = new CapturedLines();
    const logger = new AppLogger({ destination: logs });
    logger.log({ event: 'test.before_application' }, 'Main');
    app = await createApp(adapter, logger, []);
    await app.init();

    const traceId = logs.one('test.before_application').trace_id;
    expect(new Set(logs.lines.map((line) => line.trace_id))).toEqual(new Set([traceId]));
    expect(app.get(TraceContext).traceId()).toBe(traceId);
  });

  it('writes the error of a failed boot as one JSON line, after the lines before it', async () => {
    const logs = new CapturedLines();
    const logger = new AppLogger({ destination: logs });

    await expect(createApp(adapter, logger, [LifecycleModule.forRoot({ drainDelayMs: -1 })])).rejects.toThrow();

    expect(logs.lines[0]).toMatchObject({ context: 'NestFactory', msg: 'Starting Nest application...' });
    expect(logs.lines.filter((line) => (line.level as number) >= 50)).toEqual([
      expect.objectContaining({ context: 'ExceptionHandler', err: expect.objectContaining({ type: 'LifecycleOptionsError' }) }),
    ]);
  });

  it('removes its process exit listener when the application closes, and writes later lines at once', async () => {
    const before = process.listenerCount('exit');
    const logs = new CapturedLines();
    const logger = new AppLogger({ destination: logs });
    expect(process.listenerCount('exit')).toBe(before + 1);
    app = await createApp(adapter, logger);
    await app.init();

    await app.close();
    app = undefined;
    logger.log({ event: 'test.after_close' }, 'Main');

    expect(process.listenerCount('exit')).toBe(before);
    expect(logs.one('test.after_close')).toMatchObject({ context: 'Main' });
  });
});
