import { Inject, Injectable, OnApplicationShutdown } from '@nestjs/common';
import { pino, type DestinationStream } from 'pino';
import { LOGGING_OPTIONS } from './logging.constants';
import type { ResolvedLoggingOptions } from './logging.options';

/** What a destination may offer beyond `write`: pino's SonicBoom has both. */
interface FlushableStream extends DestinationStream {
  flush?(cb?: (error?: Error | null) => void): void;
  flushSync?(): void;
}

/**
 * Where pino writes: standard output (or the `destination` option), optionally through
 * pino-pretty, and never a line lost at exit.
 *
 * Standard output is a SonicBoom that gathers `bufferBytes` and writes them synchronously: one
 * system call per few dozen lines, and, unlike an asynchronous SonicBoom, never a write still in
 * flight on libuv's thread pool when `process.exit()` runs (the lifecycle logs its last line and
 * exits in the same tick), so flushing the buffer synchronously on 'exit' is all it takes to lose
 * nothing. A timer bounds how long a line waits in a quiet service.
 */
@Injectable()
export class LogDestination implements DestinationStream, OnApplicationShutdown {
  private readonly target: FlushableStream;
  private readonly prettify: ((line: string) => string) | undefined;
  private readonly flushTimer: NodeJS.Timeout | undefined;
  private pending = false;
  /** After the application closed: no exit listener any more, so every line goes out at once. */
  private writeThrough = false;

  constructor(@Inject(LOGGING_OPTIONS) options: ResolvedLoggingOptions) {
    this.target = options.destination ?? pino.destination({ dest: 1, sync: true, minLength: options.bufferBytes });
    this.prettify = options.pretty ? loadPrettifier() : undefined;
    if (options.destination === undefined && options.bufferBytes > 0) {
      this.flushTimer = setInterval(this.flushPending, options.flushIntervalMs);
      this.flushTimer.unref();
    }
    process.on('exit', this.flushOnExit);
  }

  write(line: string): void {
    this.target.write(this.prettify === undefined ? line : this.prettify(line));
    if (this.writeThrough) this.flushSync();
    else this.pending = true;
  }

  /** Backs pino's `logger.flush(cb)`. */
  flush(cb?: (error?: Error | null) => void): void {
    this.pending = false;
    if (this.target.flush) this.target.flush(cb);
    else cb?.();
  }

  flushSync(): void {
    this.pending = false;
    try {
      this.target.flushSync?.();
    } catch {
      // Standard output closed under us (EPIPE): there is nowhere left to write to.
    }
  }

  /**
   * Lines still come after the application closed: the lifecycle logs STOPPED and its exit line
   * after `app.close()` returns. Flush, then write each later line at once, so that the exit
   * listener can go (tests create many applications in one process; each would leave one behind).
   */
  onApplicationShutdown(): void {
    clearInterval(this.flushTimer);
    this.flushSync();
    this.writeThrough = true;
    process.off('exit', this.flushOnExit);
  }

  private readonly flushOnExit = (): void => this.flushSync();

  private readonly flushPending = (): void => {
    if (this.pending) this.flush();
  };
}

/** pino-pretty's line formatter, run in-process so pretty lines take the same flush path as JSON. */
function loadPrettifier(): (line: string) => string {
  // Loaded only when asked for: pino-pretty is an optional peer dependency, absent in production.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const pinoPretty = require('pino-pretty') as typeof import('pino-pretty');
  return pinoPretty.prettyFactory({ ignore: 'pid,hostname', translateTime: 'SYS:HH:MM:ss.l' });
}
