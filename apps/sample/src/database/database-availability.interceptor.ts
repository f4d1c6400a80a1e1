import { CallHandler, ExecutionContext, Injectable, NestInterceptor, ServiceUnavailableException } from '@nestjs/common';
import { catchError, Observable, throwError } from 'rxjs';
import { DatabaseConnector } from './database.connector';

/** Error codes of a database that cannot be reached, as opposed to a query that is wrong. */
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  // PostgreSQL SQLSTATEs: connection exceptions, too many connections, shutting down, starting up.
  '08000',
  '08001',
  '08003',
  '08006',
  '53300',
  '57P01',
  '57P02',
  '57P03',
]);
const UNREACHABLE_MESSAGES = /Connection terminated|timeout exceeded when trying to connect|Driver not Connected/i;

/**
 * For routes that need the database: 503 while it is not connected yet, and when it cannot be
 * reached later on, instead of a 500 per request. A 503 tells the client (and a retrying proxy)
 * to try again, another instance or later; the readiness probe already takes the instance out.
 */
@Injectable()
export class DatabaseAvailabilityInterceptor implements NestInterceptor {
  constructor(private readonly database: DatabaseConnector) {}

  intercept(_context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (!this.database.connected) throw new ServiceUnavailableException('the database is not connected yet; retry shortly');
    return next
      .handle()
      .pipe(
        catchError((error: unknown) =>
          throwError(() => (isUnreachable(error) ? new ServiceUnavailableException('the database is unavailable; retry shortly') : error)),
        ),
      );
  }
}

function isUnreachable(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && UNREACHABLE_CODES.has(code)) return true;
  return error instanceof Error && UNREACHABLE_MESSAGES.test(error.message);
}
