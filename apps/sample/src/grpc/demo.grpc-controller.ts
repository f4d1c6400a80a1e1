import { Controller } from '@nestjs/common';
import { GrpcMethod, Payload, RpcException } from '@nestjs/microservices';
import { status as GrpcStatus } from '@grpc/grpc-js';

const MAX_SLOW_MS = 60_000;

/** `demo.v1.Demo` (apps/sample/proto/demo.proto): a call in flight when a shutdown begins, as GET /demo/slow. */
@Controller()
export class DemoGrpcController {
  @GrpcMethod('Demo', 'Slow')
  async slow(@Payload() request: { ms: number }): Promise<{ sleptMs: number }> {
    const ms = request.ms;
    if (!Number.isInteger(ms) || ms < 0 || ms > MAX_SLOW_MS) {
      throw new RpcException({ code: GrpcStatus.INVALID_ARGUMENT, message: `ms must be a whole number from 0 to ${MAX_SLOW_MS}` });
    }
    await new Promise((resolve) => setTimeout(resolve, ms));
    return { sleptMs: ms };
  }
}
