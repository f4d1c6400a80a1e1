import { type CallHandler, type ExecutionContext, HttpException, HttpStatus, Injectable, type NestInterceptor } from '@nestjs/common';
import { RpcException } from '@nestjs/microservices';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { catchError, type Observable, throwError } from 'rxjs';

/**
 * The gRPC status for each HTTP status the orders code throws (google.rpc.Code's own mapping), so
 * that the service and its interceptors, written for HTTP, answer gRPC callers with codes a client
 * can act on: NOT_FOUND, and UNAVAILABLE (retry, here or elsewhere) while the database is away.
 */
const GRPC_STATUS_OF: ReadonlyMap<number, GrpcStatus> = new Map([
  [HttpStatus.BAD_REQUEST, GrpcStatus.INVALID_ARGUMENT],
  [HttpStatus.UNAUTHORIZED, GrpcStatus.UNAUTHENTICATED],
  [HttpStatus.FORBIDDEN, GrpcStatus.PERMISSION_DENIED],
  [HttpStatus.NOT_FOUND, GrpcStatus.NOT_FOUND],
  [HttpStatus.CONFLICT, GrpcStatus.ABORTED],
  [HttpStatus.TOO_MANY_REQUESTS, GrpcStatus.RESOURCE_EXHAUSTED],
  [HttpStatus.NOT_IMPLEMENTED, GrpcStatus.UNIMPLEMENTED],
  [HttpStatus.SERVICE_UNAVAILABLE, GrpcStatus.UNAVAILABLE],
  [HttpStatus.GATEWAY_TIMEOUT, GrpcStatus.DEADLINE_EXCEEDED],
]);

export function grpcStatusOf(httpStatus: number): GrpcStatus {
  return GRPC_STATUS_OF.get(httpStatus) ?? (httpStatus >= 500 ? GrpcStatus.INTERNAL : GrpcStatus.FAILED_PRECONDITION);
}

/**
 * HTTP exceptions, from the handler or an interceptor inside this one, as RpcExceptions with the
 * matching gRPC status and their message. An interceptor rather than an exception filter: the
 * metrics interceptor (outside it) labels `rpc_server_duration_seconds` with the status the caller
 * gets, where a filter would only convert it after that. Other errors pass as they are (Nest
 * answers UNKNOWN and logs them).
 */
@Injectable()
export class GrpcStatusInterceptor implements NestInterceptor {
  intercept(_context: ExecutionContext, next: CallHandler): Observable<unknown> {
    return next
      .handle()
      .pipe(
        catchError((error: unknown) =>
          throwError(() =>
            error instanceof HttpException ? new RpcException({ code: grpcStatusOf(error.getStatus()), message: error.message }) : error,
          ),
        ),
      );
  }
}
