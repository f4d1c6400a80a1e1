import { Controller, UseInterceptors } from '@nestjs/common';
import { GrpcMethod, Payload } from '@nestjs/microservices';
import { Canary, CanaryDecision } from '@nest-rollout/canary';
import { DatabaseAvailabilityInterceptor } from '../database/database-availability.interceptor';
import { type Order, OrdersService, type Quote } from '../orders/orders.service';
import { GrpcStatusInterceptor } from './grpc-status.interceptor';

/** `orders.v1.Orders` (apps/sample/proto/orders.proto): the orders of the HTTP routes, over gRPC. */
@Controller()
// UNAVAILABLE while the database is not connected or cannot be reached (the HTTP routes' 503), and
// NOT_FOUND for an unknown order.
@UseInterceptors(GrpcStatusInterceptor, DatabaseAvailabilityInterceptor)
export class OrdersGrpcController {
  constructor(private readonly orders: OrdersService) {}

  @GrpcMethod('Orders', 'GetOrder')
  getOrder(@Payload() request: { id: string }): Promise<Order> {
    return this.orders.get(request.id);
  }

  /**
   * Decided by the canary rules from the call's metadata, as `GET /orders/:id/quote` is from the
   * request's headers; the price is the serving instance's own formula.
   */
  @GrpcMethod('Orders', 'GetQuote')
  @Canary()
  getQuote(@Payload() request: { id: string }, @CanaryDecision() decision: CanaryDecision): Promise<Quote> {
    return this.orders.quote(request.id, decision);
  }
}
