import type { DynamicModule, INestApplication, ModuleMetadata, Type } from '@nestjs/common';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import type { DestinationStream } from 'pino';
import { Logger, LoggingModule, type LoggingModuleOptions } from '../src/index';

/** Shared by the specs (excluded from the build): every HTTP behaviour is checked on both adapters. */
export const ADAPTERS = ['express', 'fastify'] as const;
export type AdapterName = (typeof ADAPTERS)[number];

export type LogLine = Record<string, unknown>;

/** A pino destination that keeps every line, parsed. */
export class CapturedLines implements DestinationStream {
  readonly lines: LogLine[] = [];

  write(chunk: string): void {
    for (const line of chunk.split('\n')) if (line !== '') this.lines.push(JSON.parse(line) as LogLine);
  }

  withEvent(event: string): LogLine[] {
    return this.lines.filter((line) => line.event === event);
  }

  one(event: string): LogLine {
    const found = this.withEvent(event);
    if (found.length !== 1)
      throw new Error(`expected one "${event}" line, got ${found.length}:\n${this.lines.map((l) => JSON.stringify(l)).join('\n')}`);
    return found[0];
  }
}

export interface LoggingTestApp {
  readonly app: INestApplication;
  readonly url: string;
  readonly logs: CapturedLines;
  close(): Promise<void>;
}

export interface LoggingTestSetup extends Pick<ModuleMetadata, 'controllers' | 'providers'> {
  options?: LoggingModuleOptions;
  imports?: (Type | DynamicModule)[];
}

/**
 * Starts a real application on a loopback port the way a user does (`NestFactory.create` with
 * `bufferLogs`, then `app.useLogger(app.get(Logger))`), its lines captured instead of written to
 * standard output.
 */
export async function bootstrapLoggingApp(adapter: AdapterName, setup: LoggingTestSetup = {}): Promise<LoggingTestApp> {
  const logs = new CapturedLines();
  @Module({
    imports: [LoggingModule.forRoot({ destination: logs, ...setup.options }), ...(setup.imports ?? [])],
    controllers: setup.controllers ?? [],
    providers: setup.providers ?? [],
  })
  class TestAppModule {}

  const app = await NestFactory.create(TestAppModule, adapter === 'fastify' ? new FastifyAdapter() : new ExpressAdapter(), {
    bufferLogs: true,
    abortOnError: false,
  });
  app.useLogger(app.get(Logger));
  await app.listen(0, '127.0.0.1');
  const url = await app.getUrl();
  return { app, url: url.replace('[::1]', '127.0.0.1'), logs, close: () => app.close() };
}
