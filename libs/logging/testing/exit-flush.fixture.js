'use strict';
// Child process of log.destination.spec.ts. Logs through the BUILT library (libs/logging/dist) to
// the real standard output, with the default buffered destination, then leaves in the way the
// scenario (argv[2]) says. Plain JavaScript so that it runs with nothing but node.
require('reflect-metadata');
const { Injectable, Logger: NestLogger, Module } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const { LifecycleModule, attachLifecycle } = require('@nest-rollout/lifecycle');
const { LoggingModule, Logger } = require('../dist');

const scenario = process.argv[2];
const count = Number(process.argv[3] ?? 1);

class ShutdownHookLogger {
  onApplicationShutdown() {
    new NestLogger('Fixture').log({ event: 'fixture.shutdown_hook' });
  }
}
Injectable()(ShutdownHookLogger);

class FixtureModule {}
Module({
  imports: [LoggingModule.forRoot(), LifecycleModule.forRoot({ drainDelayMs: 0, minReadyDelayMs: 0, shutdownTimeoutMs: 2000 })],
  providers: [ShutdownHookLogger],
})(FixtureModule);

async function main() {
  const app = await NestFactory.create(FixtureModule, { bufferLogs: true });
  app.useLogger(app.get(Logger));
  // Nest holds buffered lines until the application initialises (app.listen() does it too).
  await app.init();
  const logger = new NestLogger('Fixture');
  const burst = () => {
    for (let i = 0; i < count; i++) logger.log({ event: 'fixture.line', i });
  };
  switch (scenario) {
    case 'burst-then-exit':
      burst();
      process.exit(0); // same tick: no timer, no close, only the 'exit' listener can save the buffer
      break;
    case 'burst-then-crash':
      burst();
      process.nextTick(() => {
        throw new Error('fixture crash');
      });
      break;
    case 'quiet':
      logger.log({ event: 'fixture.quiet' });
      setTimeout(() => process.exit(0), 30_000); // the spec kills it long before
      break;
    case 'lifecycle-sigterm':
      attachLifecycle(app);
      await app.listen(0, '127.0.0.1');
      process.stderr.write('fixture:listening\n');
      break;
    default:
      throw new Error(`unknown scenario ${scenario}`);
  }
}

main().catch((error) => {
  process.stderr.write(`fixture failed: ${error && error.stack}\n`);
  process.exit(2);
});
